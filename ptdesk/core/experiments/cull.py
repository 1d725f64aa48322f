"""Idle experiments and idle GPUs: find them, and stop (never delete) what has been idle too long.

Each kind says how idle one of its experiments is (Kind.idle: Jupyter's own last_activity, the SSH
user's processes); an experiment that cannot tell is never culled.
Culling stops the container: the workspace and keys stay, its GPUs are free for others after the
gpu_hold_after_stop hold, and `ptdesk start` resumes (on other GPUs if they were taken).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.base.gpu_models import GpuSample, GpuSnapshot
from ptdesk.core.experiments import listing, operations
from ptdesk.core.kinds import get_kind
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site



@dataclass(frozen=True)
class IdleState:
    name: str
    kind: str
    owner: str
    idle_seconds: float | None  # None: could not tell (never culled then)
    detail: str  # how it was measured, or why it could not be
    culled: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "owner": self.owner, "idle_seconds": self.idle_seconds,
                "detail": self.detail, "culled": self.culled}


def idle_states(site: Site, now: float | None = None) -> list[IdleState]:
    """How long each running experiment of this instance has been idle."""
    now = time.time() if now is None else now
    running = {e.name: e for e in listing.list_experiments(site, all=False) if not e.orphan}
    states: list[IdleState] = []
    for record in site.store.experiments():
        experiment = running.get(record.name)
        if experiment is None or record.status == "launching":
            continue
        try:
            kind = get_kind(record.kind)
            idle, detail = (kind.idle(site, record, experiment.id, now) if kind.cullable
                            else (None, "never culled: it ends by itself"))
        except PtdeskError as exc:
            idle, detail = None, exc.message
        states.append(IdleState(record.name, record.kind, record.owner, idle, detail))
    return states


def cull(site: Site, limit: float, dry_run: bool = False, now: float | None = None) -> list[IdleState]:
    """Stop every experiment idle for longer than `limit` seconds; returns each one's state."""
    out: list[IdleState] = []
    for state in idle_states(site, now):
        culled = False
        if state.idle_seconds is not None and state.idle_seconds >= limit and not dry_run:
            try:
                operations.stop(site, state.name)
                site.store.audit("cull", state.name, {"idle_seconds": round(state.idle_seconds),
                                                      "limit_seconds": round(limit), "how": state.detail})
                culled = True
            except PtdeskError as exc:  # it went away meanwhile: nothing left to stop
                state = IdleState(state.name, state.kind, state.owner, state.idle_seconds, exc.message)
        out.append(IdleState(state.name, state.kind, state.owner, state.idle_seconds, state.detail, culled))
    return out


def idle_gpus(history: Sequence[GpuSnapshot], for_seconds: float = 1800.0,
              min_memory: int = 256 * 2**20) -> dict[str, float]:
    """GPUs that hold memory at 0 % utilisation for at least `for_seconds`: label -> seconds so.

    Pure function of samples (oldest first). A GPU "holds memory" when processes are on it or its
    used memory is at least `min_memory`. A sample that could not be read (utilisation None) ends
    the idle run: unknown is not idle.
    """
    flagged: dict[str, float] = {}
    if not history:
        return flagged
    latest = history[-1]
    for gpu in latest.gpus:
        since: float | None = None
        for snapshot in reversed(history):
            sample = next((g for g in snapshot.gpus if g.uuid == gpu.uuid and g.label == gpu.label), None)
            if sample is None or not _holds_idle(sample, min_memory):
                break
            since = snapshot.taken_at
        if since is not None and latest.taken_at - since >= for_seconds:
            flagged[gpu.label] = latest.taken_at - since
    return flagged


def _holds_idle(sample: GpuSample, min_memory: int) -> bool:
    holds = bool(sample.processes) or (sample.memory_used or 0) >= min_memory
    return sample.error is None and sample.utilization == 0 and holds
