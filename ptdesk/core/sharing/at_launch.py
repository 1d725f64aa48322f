"""What a launch owes the people it shares GPUs with: the queue's claims, others' reservations,
and filing the request in the queue when no GPU can be given now.

Called by ptdesk.core.experiments.launch under the engine's GPU lock, so what it reads is what admission
would read: a plain launch never takes a GPU the head of the queue waits for, nor one someone
else has reserved for now; an `auto` launch avoids GPUs someone reserved for later while others
are free (and is told when it must give one back otherwise: `warnings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.gpu_models import GpuInventory
from ptdesk.core.base.models import LaunchSpec
from ptdesk.core.gpu import ledger
from ptdesk.core.gpu.ledger import Hold
from ptdesk.core.sharing import booking, gpu_queue
from ptdesk.core.sharing.reservations import Reservation, blocking, upcoming, zone
from ptdesk.errors import Conflict, GpuUnavailable

if TYPE_CHECKING:
    from ptdesk.core.site import Site

QUEUED = gpu_queue.QUEUED
QUEUE_HINT = ("Or wait in the GPU queue: add --queue (it starts by itself when GPUs free; "
              "`ptdesk queue` shows why it waits).")


def claims(site: Site, owner: str, request: str, on_engine: Mapping[str, dict], held: Mapping[int, str | Hold],
           inventory: GpuInventory | None, now: float | None = None) -> dict[int, str]:
    """GPU index -> why `owner`'s launch (or start on other GPUs) asking for `request` may not take
    it, beyond what containers hold."""
    if inventory is None or not inventory.available:
        return {}
    now = clock.now() if now is None else now
    reservations = booking.reservations(site)
    ordered = gpu_queue.fair_order(gpu_queue.entries(on_engine.values()))
    out: dict[int, str] = {}
    if ordered:
        queue_plan = gpu_queue.plan(ordered, held, inventory, reservations, now)
        out.update({i: f"the GPU queue ({who} waits for it)" for i, who in queue_plan.claimed.items()})
    for gpu in inventory.gpus:
        active = blocking(reservations, gpu.index, owner, now)
        if active is not None:
            out.setdefault(gpu.index, f"a reservation ({active.describe()})")
    if request == "auto":
        taken = {**held, **out}
        later = {g.index: upcoming(reservations, g.index, owner, now) for g in inventory.gpus}
        if any(i not in taken and later[i] is None and not g.error for i, g in ((g.index, g) for g in inventory.gpus)):
            out.update({i: f"a reservation ({r.describe()})" for i, r in later.items() if r and i not in taken})
    return out


def allocate_or_queue(spec: LaunchSpec, held: Mapping[int, str | Hold],
                      inventory: GpuInventory | None) -> tuple[int, ...] | None:
    """The GPUs a launch gets now; None when it is filed in the queue instead (spec.queue and no
    GPU free). A request the box can never meet (no GPU 7) is refused either way."""
    request = ledger.parse_request(spec.gpus, spec.gpu_memory)
    try:
        return ledger.allocate(request, held, inventory)
    except (GpuUnavailable, Conflict) as exc:
        if getattr(exc, "field", "gpus") not in (None, "gpus"):
            raise
        ledger.allocate(request, {}, inventory)  # the box itself cannot: that error, not a queue
        if spec.queue:
            return None
        if "--queue" not in (exc.hint or ""):
            exc.hint = f"{exc.hint} {QUEUE_HINT}" if exc.hint else QUEUE_HINT
        raise


def queue_labels(spec: LaunchSpec) -> dict[str, str]:
    return gpu_queue.labels_for(spec.gpus, spec.gpu_memory)


def warnings(site: Site, owner: str, gpus: Sequence[int], now: float | None = None) -> list[str]:
    """"GPU 3 is reserved by ann from 14:00 UTC: …" for each GPU given that someone booked later."""
    if not gpus:
        return []
    now = clock.now() if now is None else now
    found: list[Reservation] = booking.reservations(site)
    out = []
    for index in gpus:
        later = upcoming(found, index, owner, now)
        if later is not None:
            when = f"{later.clock(later.start)} {zone(later.start, later.tz)}"
            out.append(f"GPU {index} is reserved by {later.owner} from {when}: give it back by then "
                       "(the experiment is stopped when the reservation starts).")
    return out
