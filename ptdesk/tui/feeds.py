"""What the GPU feed's thread computes: one Workstation GPU sample in, an immutable view out.

Nothing here imports Textual, so the benchmark (bench/dashboard.py) measures exactly the work one
dashboard refresh does, and the NVML calls stay out of the UI thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.gpu.holds import HoldReader
from ptdesk.core.workstation import Workstation

if TYPE_CHECKING:
    # A name only: the claims module (the GPU sharing rules, NVML, the engine's SDK below it) is
    # imported by the first sample's Workstation.gpu_claims, in the feed's thread after the first frame.
    from ptdesk.core.sharing.claims import GpuClaim

IDLE_KEPT = 4096  # snapshots kept to measure idle runs; past that the oldest run start is forgotten
IdleKey = tuple[tuple[tuple[str, str], ...], frozenset[str]]  # (uuid, label) of each GPU, labels idle now
# The judge: snapshots (oldest first), minimum seconds -> label -> idle seconds (Workstation.idle_gpus).
IdleJudge = Callable[[Sequence[GpuSnapshot], float], dict[str, float]]
IDLE_FLAG_AFTER = 1800.0  # the panel flags a GPU idle this long (what cull calls idle)


@dataclass(frozen=True)
class GpuView:
    snapshot: GpuSnapshot
    # uuid -> recent utilisation (percent, None where unread), oldest first, for the sparklines
    history: dict[str, tuple[float | None, ...]] = field(default_factory=dict)
    # GPU label -> seconds it has held memory at 0 % utilisation, for GPUs idle long enough to flag
    idle: dict[str, float] = field(default_factory=dict)
    # GPU index -> who holds it (busy or idle), reserved, unclaimed use (ptdesk.core.sharing.claims)
    claims: dict[int, GpuClaim] = field(default_factory=dict)


class IdleGpus:
    """Which GPUs hold memory at 0 % utilisation, and for how long; `judge` (the core's) decides.

    The judge reads a run of snapshots back from the newest one. Keeping every 1 Hz sample for the
    half hour (or the hours) an idle run lasts would cost memory and a long walk per sample, so only
    the snapshots where some GPU's idle state changed are kept (the first of a run carries its
    start), plus the newest; the judge gives the same answer on those as on every sample. Called
    from the GPU worker's thread; the lock keeps it safe wherever else it is called from.
    """

    def __init__(self, judge: IdleJudge, keep: int = IDLE_KEPT) -> None:
        self._judge = judge
        self._lock = threading.Lock()
        self._kept: deque[tuple[IdleKey, GpuSnapshot]] = deque(maxlen=keep)

    def add(self, snapshot: GpuSnapshot) -> dict[str, float]:
        """Record one sample; returns label -> idle seconds of the GPUs idle long enough to flag."""
        key = self._idle_key(snapshot)
        with self._lock:
            if not key[1]:
                self._kept.clear()  # nothing idle now: every run ends here, nothing older matters again
            elif len(self._kept) >= 2 and self._kept[-1][0] == key == self._kept[-2][0]:
                self._kept.pop()  # the middle of an unchanged stretch says nothing its ends do not
            self._kept.append((key, snapshot))
            return self._judge([kept for _, kept in self._kept], IDLE_FLAG_AFTER)

    def _idle_key(self, snapshot: GpuSnapshot) -> IdleKey:
        """What the judge can tell apart in one snapshot: the GPUs present, and which of them sit
        idle holding memory right now (the judge on that snapshot alone, with no minimum duration)."""
        return (tuple((g.uuid, g.label) for g in snapshot.gpus), frozenset(self._judge([snapshot], 0.0)))


def sample_gpus(ws: Workstation, engine_up: bool, idle: IdleGpus | None = None,
                holds: HoldReader | None = None) -> GpuView:
    """One NVML sample with owners filled in; never raises (a broken GPU stack is a value).

    While the engine is known to be down it is not asked (owners come from /proc and the store).
    With `idle`, the view also says which GPUs have held memory at 0 % for long (the dashboard's flag).
    """
    snapshot = ws.gpu_snapshot(use_engine=engine_up)
    history = {g.uuid: ws.gpu_history(g.uuid) for g in snapshot.gpus}
    claims = ws.gpu_claims(snapshot, holds, use_engine=engine_up and holds is not None)
    return GpuView(snapshot, history, idle.add(snapshot) if idle is not None else {}, claims)
