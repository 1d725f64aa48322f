"""Recording GPU use: each sample of the box's service (`ptdesk watch`) folds into five-minute buckets.

A sample is what ptdesk already reads every few seconds: NVML's snapshot, each GPU's claim (who
holds it, busy or idle: ptdesk.core.sharing.claims) and the reservations in force. `observe` is pure
(a test gives it known samples); `UsageRecorder.sample` reads them from a workstation and `flush`
writes this recorder's day files to the box's history (ptdesk.core.usage.history).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.usage.buckets import SLOT, Bucket, DayFile

if TYPE_CHECKING:
    from ptdesk.core.gpu.holds import HoldReader
    from ptdesk.core.sharing.claims import GpuClaim
    from ptdesk.core.site import Site

MAX_GAP = 120.0  # a sample stands for at most this long: a recorder that was away counts nothing


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:120]  # labels come from whoever made the container


@dataclass
class UsageRecorder:
    """One recorder (one `ptdesk watch`): its buckets of the days it saw, kept until written."""

    recorder_id: str = field(default_factory=lambda: secrets.token_hex(4))
    days: dict[int, DayFile] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)
    last_at: float | None = None

    def observe(self, moment: float, snapshot: GpuSnapshot, claims: Mapping[int, GpuClaim],
                reservers: Mapping[int, str], images: Mapping[str, str], dt: float) -> None:
        """Fold one sample standing for the `dt` seconds up to `moment` into its buckets.
        `reservers`: GPU index -> whose reservation is in force; `images`: experiment -> image."""
        if dt <= 0 or not snapshot.available:
            return
        middle = moment - dt / 2  # the slot the sampled time falls in (a sample at 10:05:00 stands for 10:04:30-10:05)
        day_number, slot = int(middle // 86400), int(middle % 86400 // SLOT)
        day = self.days.setdefault(day_number, DayFile(day_number))
        for gpu in snapshot.physical:
            claim = claims.get(gpu.index)
            hold = claim.holder if claim else None
            reserver = reservers.get(gpu.index)
            holder = None if hold is None else (_clean(hold.experiment), _clean(hold.owner or "?"),
                                                _clean(images.get(hold.experiment, "?")))
            if holder is None and reserver is None:
                continue  # a free, unreserved GPU: nothing to keep
            bucket = day.buckets.setdefault((gpu.index, slot, holder), Bucket(gpu.index, slot, holder))
            bucket.reserver = bucket.reserver or (_clean(reserver) if reserver else None)
            bucket.seen_s += dt
            if reserver and (hold is None or hold.owner != reserver):
                bucket.reserved_unused_s += dt
            if hold is None:
                continue
            bucket.held_s += dt
            working = hold.state == "running" and claim is not None and claim.busy is not False
            if not working:
                bucket.idle_held_s += dt
            elif gpu.utilization is not None:
                bucket.busy_s += dt * min(max(gpu.utilization, 0), 100) / 100
            if gpu.memory_used:
                bucket.memory_peak = max(bucket.memory_peak, int(gpu.memory_used))
        self.changed.add(day_number)

    def sample(self, site: Site, reader: HoldReader | None = None, every: float = 30.0) -> None:
        """Read one sample from the workstation and fold it in (the service calls this every `every`
        seconds; the first sample stands for that long, later ones for the time since the last)."""
        from ptdesk.core.base.names import container_key
        from ptdesk.core.sharing import booking
        from ptdesk.core.sharing.claims import claims
        moment = clock.now()
        snapshot = site.gpu_snapshot()
        if not snapshot.available or not snapshot.gpus:
            self.last_at = moment  # no GPU to record (no driver here): the engine is not asked
            return
        found = claims(site, snapshot, reader)
        reservers = {g: r.owner for r in booking.reservations(site, now=moment) if r.active(moment) for g in r.gpus}
        images = {container_key(c): str(c.get("Image") or "?") for c in site.engine.list_managed(site.config.instance)}
        dt = min(every, MAX_GAP) if self.last_at is None else min(max(moment - self.last_at, 0.0), MAX_GAP)
        self.observe(moment, snapshot, found, reservers, images, dt)
        self.last_at = moment

    def flush(self, site: Site) -> int:
        """Write the changed days to the box's history; days before yesterday are then dropped here.
        The number of day files written."""
        from ptdesk.core.usage import history
        written = 0
        for day in sorted(self.changed):
            history.write_day(site, self.days[day], self.recorder_id)
            written += 1
        self.changed.clear()
        today = int(clock.now() // 86400)
        for day in [d for d in self.days if d < today - 1]:
            del self.days[day]
        return written

