"""No claim that lies: per GPU, who holds it, whether it works while held, and unclaimed use.

A GPU is *held* by the experiment whose container the engine gives it to (running, or stopped and
still within its hold: ptdesk.core.gpu.holds). Held and doing nothing is worth saying (a notebook
that holds a GPU overnight); so is the opposite, a GPU used by a process outside every ptdesk
experiment — a host process, a container someone started by hand — named by host user and pid.
Such *unclaimed* use above the `unclaimed_gpu_memory` setting makes a GPU not free for `auto`,
`any:N` and admission, and they say so (GpuLoad.unclaimed). The reservation a GPU is under is
the reservations' to fill (`reserved`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ptdesk.core.access.ownership import instance_containers
from ptdesk.core.base import clock
from ptdesk.core.base.gpu_models import GpuInventory, GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.base.units import human_bytes
from ptdesk.core.gpu.holds import HoldReader, engine_holds
from ptdesk.core.gpu.ledger import Hold, parse_gpu_memory
from ptdesk.core.gpu.nvml import inventory_of
from ptdesk.core.sharing import booking
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


@dataclass(frozen=True)
class GpuClaim:
    """One physical GPU's claims."""

    index: int
    holder: Hold | None = None
    busy: bool | None = None  # while held: doing work (utilisation, or its processes); None: unknown
    unclaimed: tuple[GpuProcess, ...] = ()  # processes outside every ptdesk experiment
    unclaimed_memory: int = 0  # bytes those processes use (as far as the driver says)
    blocks: bool = False  # unclaimed use above the threshold: not free for auto / any:N / admission
    reserved: str | None = None  # "reserved by WHO FROM–TO": set by the reservations (issue 22, item 3)

    def held_text(self) -> str:
        """"g1 (alice), running, busy" / "g1 (alice), stopped until 14:03, idle" / ""."""
        if self.holder is None:
            return ""
        h = self.holder
        state = h.state
        if h.state == "stopped" and h.until is not None:
            state = f"stopped, holds until {time.strftime('%H:%M', time.localtime(h.until))}"
        work = "" if self.busy is None else (", busy" if self.busy else ", idle")
        return f"{h.experiment}{f' ({h.owner})' if h.owner else ''}, {state}{work}"

    def unclaimed_text(self) -> str:
        """"30 GiB by pid 4242 (bob)" — who uses it outside ptdesk, as far as can be known."""
        if not self.unclaimed:
            return ""
        who = ", ".join(f"pid {p.pid} ({p.host_user or 'user unknown'})" for p in self.unclaimed[:3])
        more = f" and {len(self.unclaimed) - 3} more" if len(self.unclaimed) > 3 else ""
        return f"{human_bytes(self.unclaimed_memory)} by {who}{more}"

    def to_json(self) -> dict:
        holder = None
        if self.holder is not None:
            holder = {"experiment": self.holder.experiment, "owner": self.holder.owner or None,
                      "state": self.holder.state, "until": self.holder.until, "busy": self.busy}
        return {"held_by": holder, "reserved": self.reserved,
                "unclaimed": {"memory": self.unclaimed_memory, "blocks_allocation": self.blocks,
                              "processes": [{"pid": p.pid, "host_user": p.host_user, "used_memory": p.used_memory,
                                             "container": p.container} for p in self.unclaimed]}}


def unclaimed_of(gpu: GpuSample) -> tuple[GpuProcess, ...]:
    """Processes on a GPU that belong to no ptdesk experiment (attributed snapshot)."""
    return tuple(p for p in gpu.processes if p.experiment is None)


def claims_of(snapshot: GpuSnapshot, holds: Mapping[int, Hold], threshold: int) -> dict[int, GpuClaim]:
    """Per physical GPU: its holder, busy or idle while held, and its unclaimed use."""
    out: dict[int, GpuClaim] = {}
    for gpu in snapshot.physical:
        unclaimed = unclaimed_of(gpu)
        memory = sum(p.used_memory or 0 for p in unclaimed)
        holder = holds.get(gpu.index)
        busy = None
        if holder is not None and not gpu.error:
            ours = [p for p in gpu.processes if p.experiment == holder.experiment]
            busy = bool(ours) or bool(gpu.utilization and not unclaimed)
        # Only what is known to be above the threshold blocks: a driver that hides per-process memory
        # (unprivileged reads) must not make every GPU look taken.
        blocks = memory > threshold
        out[gpu.index] = GpuClaim(gpu.index, holder, busy, unclaimed, memory, blocks)
    return out


def mark_unclaimed(inventory: GpuInventory, claims: Mapping[int, GpuClaim]) -> GpuInventory:
    """The inventory with each GPU whose unclaimed use blocks it saying why (the ledger's reason)."""
    if not inventory.available:
        return inventory
    loads = tuple(
        replace(load, unclaimed=f"unclaimed use: {claims[load.index].unclaimed_text()}, outside every ptdesk "
                                "experiment (unclaimed_gpu_memory)")
        if load.index in claims and claims[load.index].blocks else load
        for load in inventory.gpus)
    return replace(inventory, gpus=loads)


def claims(site: Site, snapshot: GpuSnapshot, reader: HoldReader | None = None,
           use_engine: bool = True) -> dict[int, GpuClaim]:
    """The claims on one workstation's GPUs in an attributed snapshot. With the engine away (or
    `use_engine` False) the holds are unknown (none shown); the unclaimed use is still shown.
    `reader`: a loop's HoldReader (inspects only what changed)."""
    holds: dict[int, Hold] = {}
    if use_engine and snapshot.available and snapshot.gpus:
        every = [g.index for g in snapshot.physical]
        with contextlib.suppress(PtdeskError):  # the engine is away: holds unknown, not an error
            holds = reader.holds(site, every) if reader else engine_holds(site, instance_containers(site), every)
    found = claims_of(snapshot, holds, parse_gpu_memory(site.config.unclaimed_gpu_memory))
    # No GPU to claim (no driver, or none found): no reservation can name one, the engine is not asked
    # (`ptdesk gpus --watch` and the dashboard ask every second or two).
    return with_reservations(site, found) if use_engine and found else found


def with_reservations(site: Site, found: dict[int, GpuClaim]) -> dict[int, GpuClaim]:
    """Each GPU's reservation now, else its next one in the coming 48 h ("ann 14:00–18:00 UTC")."""
    try:
        booked = booking.reservations(site)
    except PtdeskError:  # the engine is away: reservations unknown, not an error
        return found
    now = clock.now()
    for index, claim in found.items():
        mine = [r for r in booked if index in r.gpus and r.end > now and r.start < now + 48 * 3600]
        if mine:
            found[index] = replace(claim, reserved=min(mine, key=lambda r: r.start).describe())
    return found


def inventory(site: Site, snapshot: GpuSnapshot) -> GpuInventory:
    """The ledger's device list from an attributed snapshot, each GPU blocked by unclaimed use saying why."""
    return mark_unclaimed(inventory_of(snapshot), claims_of(snapshot, {}, parse_gpu_memory(
        site.config.unclaimed_gpu_memory)))
