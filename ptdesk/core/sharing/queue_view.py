"""The queue as people read it: every entry in order with why it waits (a look, no lock).

Kept apart from admission (which starts things) so that listings can show `queued #N` and the
reason without depending on the launcher.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.gpu_models import GpuInventory
from ptdesk.core.base.names import container_key
from ptdesk.core.gpu.holds import engine_holds
from ptdesk.core.sharing import booking, gpu_queue
from ptdesk.core.sharing.gpu_queue import QueueEntry

if TYPE_CHECKING:
    from ptdesk.core.site import Site

READY = "GPUs are free: it starts at the next admission round"


def queue(site: Site, containers: Iterable[Mapping] | None = None, now: float | None = None) -> list[QueueEntry]:
    """The workstation's queue in order, each entry with why it waits (no lock: a look, not a round)."""
    listed = list(site.engine.list_managed(site.config.instance) if containers is None else containers)
    ordered = gpu_queue.fair_order(gpu_queue.entries(listed))
    if not ordered:
        return []
    inventory = site.gpu_inventory()
    plan = gpu_queue.plan(ordered, held_on(site, listed, inventory), inventory, booking.reservations(site),
                          clock.now() if now is None else now)
    reasons = {e.name: e.reason for e in plan.waiting}
    return [replace(e, reason=reasons.get(e.name, READY)) for e in ordered]


def held_on(site: Site, containers: Iterable[Mapping], inventory: GpuInventory) -> dict[int, str]:
    """GPU index -> holder, from what the engine really gives each container (one inspect each)."""
    if not inventory.available:
        return {}
    on_engine = {container_key(c): c for c in containers if gpu_queue.entry_of(c) is None}
    holds = engine_holds(site, on_engine, [g.index for g in inventory.gpus])  # a stopped one: only for its hold
    return {index: hold.experiment for index, hold in holds.items()}
