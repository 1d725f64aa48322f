"""`ptdesk notify --when-free [GPU|any:N]`: hear once when GPUs are free for you, without queueing.

A wish is kept in the person's home (PTDESK_HOME/notify/when-free.json: which workstation, which
GPUs, since when; no secret) and their `ptdesk watch` looks every few seconds. "Free" is what the
queue would give a request filed last: nothing holds the GPUs (a stopped experiment's hold
included), no queued request waits for them, no one else's reservation covers them now. When that
is so the person hears it (the gpu-free event: dashboard and routes), once, and the wish is done.
People in the queue need no wish: their experiment starts by itself, and they hear that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.names import current_user
from ptdesk.core.base.private_files import write_secret
from ptdesk.core.gpu.ledger import parse_request
from ptdesk.core.notify import hooks
from ptdesk.core.notify.herald import Said, person_home
from ptdesk.core.sharing import booking, gpu_queue
from ptdesk.core.sharing.gpu_queue import QueueEntry
from ptdesk.core.sharing.queue_view import held_on
from ptdesk.errors import InvalidInput

if TYPE_CHECKING:
    from ptdesk.core.site import Site


@dataclass(frozen=True)
class Wish:
    workstation: str
    gpus: str  # as the queue reads it: "2", "0,1", "any:2"
    since: float
    owner: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _path(home: Path) -> Path:
    return home / "notify" / "when-free.json"


def wishes(home: Path) -> list[Wish]:
    try:
        return [Wish(**w) for w in json.loads(_path(home).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _save(home: Path, found: list[Wish]) -> None:
    write_secret(_path(home), json.dumps([w.to_json() for w in found]).encode())


def wish(site: Site, gpus: str) -> Wish:
    """Remember that this person wants to hear when `gpus` are free here (checked first)."""
    gpus = "any:1" if gpus.strip().lower() in ("auto", "any") else gpus.strip()
    try:
        request = parse_request(gpus)
    except InvalidInput as exc:  # its hint is --gpus's (none, all, auto ...), which --when-free does not take
        raise InvalidInput(exc.message, "For example: ptdesk notify --when-free 2, --when-free 0,1 or "
                                        "--when-free any:2") from None
    if request.mode not in ("ids", "count"):
        raise InvalidInput(f"--when-free takes GPU indices or any:N, not {gpus!r}.",
                           "For example: ptdesk notify --when-free 2, or --when-free any:2")
    inventory = site.gpu_inventory()
    known = {g.index for g in inventory.gpus} if inventory.available else set()
    if not known:
        reason = (inventory.reason or "none was found").rstrip(".")
        raise InvalidInput(f"'{site.name}' has no GPU to wait for: {reason}.", "See the GPUs with: ptdesk gpus")
    missing = [i for i in request.ids if i not in known]
    if missing:
        raise InvalidInput(f"There is no GPU {missing[0]} on '{site.name}'.", "See the GPUs with: ptdesk gpus")
    if request.mode == "count" and request.count > len(known):
        raise InvalidInput(f"'{site.name}' has {len(known)} GPU{'s' if len(known) != 1 else ''}, not {request.count}.",
                           f"Ask for at most any:{len(known)}.")
    home = person_home(site.config)
    made = Wish(site.name, gpus, clock.now(), current_user())
    _save(home, [w for w in wishes(home) if (w.workstation, w.gpus) != (made.workstation, made.gpus)] + [made])
    return made


def free_for(site: Site, wanted: Wish, now: float) -> tuple[int, ...] | None:
    """The GPUs the queue would give `wanted` if it were filed last now (None: not free yet)."""
    listed = site.engine.list_managed(site.config.instance)
    inventory = site.gpu_inventory()
    probe = QueueEntry(name="(when-free)", owner=wanted.owner, kind="-", container_id="", request=wanted.gpus,
                       submitted=float("inf"))
    ordered = [*gpu_queue.fair_order(gpu_queue.entries(listed)), probe]
    plan = gpu_queue.plan(ordered, held_on(site, listed, inventory), inventory, booking.reservations(site), now)
    return next((gpus for entry, gpus in plan.admit if entry is probe), None)


def tell(site: Site, now: float | None = None) -> list[Said]:
    """Say each wish of this workstation whose GPUs are free, once; the wish is then done."""
    home = person_home(site.config)
    mine = [w for w in wishes(home) if w.workstation == site.name]
    if not mine:
        return []
    now = clock.now() if now is None else now
    said, done = [], []
    for w in mine:
        gpus = free_for(site, w, now)
        if gpus is not None:
            done.append(w)
            if (s := hooks.gpu_freed(site, gpus, w.since)) is not None:
                said.append(s)
    if done:
        _save(home, [w for w in wishes(home) if w not in done])
    return said
