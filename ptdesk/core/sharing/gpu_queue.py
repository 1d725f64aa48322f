"""The GPU queue: who waits for which GPUs, in which order, and why. Pure: no Docker, no NVML.

A queued request IS its experiment's container, created by its owner's ptdesk with its secrets
placed (as a launch places them) but with no GPU device request and never started. It lives on the
workstation's engine, so every person's ptdesk on the box, local or over ssh://, reads the same
queue from the same labels (none of them secret) and any of them can admit its head
(ptdesk.core.sharing.admission). Labels are not identity: a forged entry can only wait in the queue, and
admission re-makes exactly the container that is there, sealed by its owner's home or not at all
adopted by it.

Order: first come, first served, round-robin between people: each person's first request comes
before anyone's second, so one person's ten requests do not starve another person's one. GPUs the
head of the queue waits for are held back from every later request and from plain launches (no
queue-jumping); later requests may use GPUs nobody earlier in the queue can use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_KIND, LABEL_NAME, LABEL_OWNER
from ptdesk.core.gpu.ledger import GpuRequest, Hold, load_key, not_usable, parse_request
from ptdesk.errors import InvalidInput

if TYPE_CHECKING:
    from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad
    from ptdesk.core.sharing.reservations import Reservation

# Reservations are read where a plan or a reason is worked out (imported there): every listing and
# reconcile reads the queue's entries, and most find none.

LABEL_QUEUE = "ptdesk.queue"  # "queued" on an entry, "admitted" on the container admission made of it
LABEL_REQUEST = "ptdesk.queue.request"  # the --gpus text as typed
LABEL_MEMORY = "ptdesk.queue.gpu-memory"  # --gpu-memory as typed ("" when not given)
LABEL_SUBMITTED = "ptdesk.queue.submitted"  # seconds since the epoch, when it was filed
LABEL_FROM = "ptdesk.queue.from"  # on an admitted container: the entry's container id
# On a stopped experiment filed again (`ptdesk start NAME --queue`): the GPUs it had ("" for none),
# which a cancel gives back to it as its own (it is stopped again, not gone).
LABEL_HAD = "ptdesk.queue.had"
QUEUED, ADMITTED = "queued", "admitted"


@dataclass(frozen=True)
class QueueEntry:
    """One queued request, as its container's labels say."""

    name: str
    owner: str
    kind: str
    container_id: str
    request: str
    submitted: float
    memory: str | None = None  # --gpu-memory
    had: tuple[int, ...] | None = None  # a stopped experiment filed again: the GPUs it had (None: a new launch)
    position: int = 0  # 1 = the head
    reason: str = ""  # why it waits, in words

    def to_json(self) -> dict:
        return {"name": self.name, "owner": self.owner, "kind": self.kind, "gpus": self.request,
                "gpu_memory": self.memory, "restart": self.had is not None,
                "submitted": self.submitted, "position": self.position, "reason": self.reason}


def entry_of(container: Mapping) -> QueueEntry | None:
    """The queue entry a listed container is, or None (not one, or labels that make no sense)."""
    labels = container.get("Labels") or {}
    if labels.get(LABEL_QUEUE) != QUEUED or container.get("State") not in (None, "created"):
        return None
    memory = labels.get(LABEL_MEMORY) or None
    try:
        submitted = float(labels.get(LABEL_SUBMITTED) or "")
        parse_request(labels.get(LABEL_REQUEST) or "", memory)
    except (ValueError, InvalidInput):  # a label nobody could have typed: not an entry
        return None
    had_text = labels.get(LABEL_HAD)
    had = None if had_text is None else tuple(int(p) for p in had_text.split(",") if p.isascii() and p.isdigit())
    return QueueEntry(name=labels.get(LABEL_NAME) or "?", owner=labels.get(LABEL_OWNER) or "?",
                      kind=labels.get(LABEL_KIND) or "?", container_id=container["Id"],
                      request=labels[LABEL_REQUEST], submitted=submitted, memory=memory,
                      had=had)


def labels_for(request: str, memory: str | None, had: Sequence[int] | None = None) -> dict[str, str]:
    """The labels that make a never-started container a queue entry (none of them secret)."""
    labels = {LABEL_QUEUE: QUEUED, LABEL_REQUEST: request, LABEL_MEMORY: memory or "",
              LABEL_SUBMITTED: f"{time.time():.6f}"}
    if had is not None:
        labels[LABEL_HAD] = ",".join(map(str, had))
    return labels


def entries(containers: Iterable[Mapping]) -> list[QueueEntry]:
    return [e for e in (entry_of(c) for c in containers) if e is not None]


def fair_order(queue: Iterable[QueueEntry]) -> list[QueueEntry]:
    """Round-robin between people, first come first served within a round; positions from 1."""
    seen: dict[str, int] = {}
    ranked = []
    for entry in sorted(queue, key=lambda e: (e.submitted, e.container_id)):
        rank = seen.get(entry.owner, 0)
        seen[entry.owner] = rank + 1
        ranked.append((rank, entry.submitted, entry.container_id, entry))
    ranked.sort(key=lambda item: item[:3])
    return [replace(item[3], position=n) for n, item in enumerate(ranked, 1)]


@dataclass(frozen=True)
class Plan:
    """One admission round: who gets which GPUs now, why the others wait, and every GPU the queue
    claims (given now, or held back for a request that waits for it)."""

    admit: tuple[tuple[QueueEntry, tuple[int, ...]], ...]
    waiting: tuple[QueueEntry, ...]  # in order, with their reason
    claimed: Mapping[int, str]


def plan(ordered: Sequence[QueueEntry], held: Mapping[int, str | Hold], inventory: GpuInventory,
         reservations: Sequence[Reservation] = (), now: float = 0.0) -> Plan:
    """Walk the queue in order over the GPUs not `held` (index -> holder)."""
    from ptdesk.core.sharing.reservations import blocking, upcoming
    taken = {i: h.experiment if isinstance(h, Hold) else h for i, h in held.items()}
    claimed: dict[int, str] = {}
    admit, waiting = [], []
    devices = {g.index: g for g in inventory.gpus} if inventory.available else {}
    for entry in ordered:
        request = parse_request(entry.request, entry.memory)
        usable = [g for g in devices.values() if g.index not in taken and not not_usable(g, request)
                  and not blocking(reservations, g.index, entry.owner, now)]
        usable.sort(key=lambda g: (bool(upcoming(reservations, g.index, entry.owner, now)), load_key(g)))
        chosen = choose(request, usable, devices)
        who = f"queued {entry.name!r} ({entry.owner})"
        if chosen is not None:
            admit.append((entry, chosen))
            claimed.update({i: who for i in chosen})
            taken.update({i: who for i in chosen})
            continue
        waiting.append(replace(entry, reason=why(request, usable, devices, taken, reservations, entry.owner, now)))
        for index in wanted_of(request, usable):  # held back: nobody later may take what it waits for
            taken.setdefault(index, who)
            claimed.setdefault(index, who)
    return Plan(admit=tuple(admit), waiting=tuple(waiting), claimed=claimed)


def needed(request: GpuRequest, devices: Mapping[int, GpuLoad]) -> int:
    """How many GPUs a request needs."""
    if request.mode == "ids":
        return len(request.ids)
    if request.mode == "all":
        return len(devices)
    return request.wanted


def choose(request: GpuRequest, usable: Sequence[GpuLoad], devices: Mapping[int, GpuLoad]) -> tuple[int, ...] | None:
    """The GPUs to give it now (best first for a count), or None while it must wait."""
    free = {g.index for g in usable}
    if request.mode == "ids":
        return request.ids if all(i in free for i in request.ids) else None
    if request.mode == "all":
        return tuple(sorted(devices)) if devices and free == set(devices) else None
    count = needed(request, devices)
    return tuple(sorted(g.index for g in usable[:count])) if count and len(usable) >= count else None


def wanted_of(request: GpuRequest, usable: Sequence[GpuLoad]) -> tuple[int, ...]:
    """The free GPUs a waiting request would take first (held back for it)."""
    if request.mode == "ids":
        return tuple(g.index for g in usable if g.index in request.ids)
    if request.mode == "all":
        return tuple(g.index for g in usable)
    return tuple(g.index for g in usable[:request.wanted])


def describe(request: GpuRequest, devices: Mapping[int, GpuLoad]) -> str:
    if request.mode == "ids":
        return f"GPU{'s' if len(request.ids) > 1 else ''} {','.join(map(str, request.ids))}"
    n = needed(request, devices)
    memory = f" with {request.min_free / 1024**3:g} GiB free" if request.min_free else ""
    return f"all {n} GPUs{memory}" if request.mode == "all" else f"{n} GPU{'s' if n != 1 else ''}{memory}"


def why(request: GpuRequest, usable: Sequence[GpuLoad], devices: Mapping[int, GpuLoad], taken: Mapping[int, str],
        reservations: Sequence[Reservation], owner: str, now: float) -> str:
    """"needs 2 GPUs: 1 free; GPU 0 held by 'train'; GPU 3 reserved by ann 14:00–18:00 UTC"."""
    from ptdesk.core.sharing.reservations import blocking
    if not devices:
        return "needs GPUs: this workstation has none that can be used"
    relevant = request.ids if request.mode == "ids" else tuple(sorted(devices))
    missing = [i for i in request.ids if i not in devices] if request.mode == "ids" else []
    parts = [f"needs {describe(request, devices)}: {len(usable)} free"]
    parts += [f"there is no GPU {i}" for i in missing]
    for index in relevant:
        if index not in devices:
            continue
        reserved = blocking(reservations, index, owner, now)
        if reserved is not None:
            parts.append(f"GPU {index} reserved by {reserved.describe()}")
        elif index in taken:
            holder = taken[index]  # an experiment's name, or the queue's own claim (already worded)
            parts.append(f"GPU {index} held by {holder if holder.startswith('queued ') else repr(holder)}")
        elif not_usable(devices[index], request):
            parts.append(f"GPU {index} not usable ({not_usable(devices[index], request)})")
    return "; ".join(parts)
