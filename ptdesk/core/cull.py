"""Idle experiments and idle GPUs: find them, and stop (never delete) what has been idle too long.

Jupyter says itself when it was last used (/api/status `last_activity`, which covers kernels and
terminals; a kernel that is busy right now counts as active). SSH has no such clock, so ptdesk keeps
one: each check that finds the container user's processes (a login, or a job left running) notes
the time in the store's meta table; idle time is measured from the later of that and the start.
Culling stops the container: the workspace, keys and GPU reservation stay, `ptdesk start` resumes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ptdesk.core import experiments, listing
from ptdesk.core.jupyter import JUPYTER, api_get
from ptdesk.core.models import GpuSample, GpuSnapshot
from ptdesk.core.sshd import CONTAINER_USER
from ptdesk.core.state import ExperimentRecord
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.workstation import Workstation

SSH_ACTIVE_KEY = "cull.ssh_active."  # + experiment name -> last time its user had processes


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


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def jupyter_idle(ws: Workstation, record: ExperimentRecord, now: float) -> tuple[float | None, str]:
    token = JUPYTER.token(ws.config, record.name)
    if not token or not record.port:
        return None, "no token or port recorded"
    # no_track_activity: asking must not itself count as activity.
    host, port, kernels = ws.config.connect_host, record.port, None
    code, status = api_get(host, port, "/api/status?no_track_activity=1", token, timeout=5.0)
    if code == 200:
        code, kernels = api_get(host, port, "/api/kernels?no_track_activity=1", token, timeout=5.0)
    if code != 200:
        return None, "Jupyter did not answer" if code == 0 else f"Jupyter answered HTTP {code}"
    if isinstance(kernels, list) and any(isinstance(k, dict) and k.get("execution_state") == "busy" for k in kernels):
        return 0.0, "a kernel is busy"
    moments = [_timestamp(status.get("last_activity") if isinstance(status, dict) else None)]
    moments += [_timestamp(k.get("last_activity")) for k in kernels if isinstance(k, dict)] \
        if isinstance(kernels, list) else []
    last = max((m for m in moments if m is not None), default=None)
    if last is None:
        return None, "Jupyter reported no last activity"
    return max(0.0, now - last), "Jupyter last_activity"


def ssh_idle(ws: Workstation, record: ExperimentRecord, container_id: str, now: float) -> tuple[float | None, str]:
    engine = ws.engine
    rc, out = engine.exec(container_id, ["pgrep", "-c", "-u", CONTAINER_USER])
    key = SSH_ACTIVE_KEY + record.name
    # pgrep: 0 = found some, 1 = none; anything else means we could not tell.
    if rc == 0 and out.strip().isdigit() and int(out.strip()) > 0:
        ws.store.set_meta(key, repr(now))
        return 0.0, f"{int(out.strip())} process(es) of {CONTAINER_USER}"
    if rc != 1:
        return None, f"pgrep failed ({out.decode(errors='replace').strip()})"
    started = _timestamp((engine.inspect(container_id).get("State") or {}).get("StartedAt")) or record.created
    seen = ws.store.get_meta(key)
    last = max(started, float(seen) if seen else 0.0)
    return max(0.0, now - last), "no process of the container user"


def idle_states(ws: Workstation, now: float | None = None) -> list[IdleState]:
    """How long each running experiment of this instance has been idle."""
    now = time.time() if now is None else now
    running = {e.name: e for e in listing.list_experiments(ws, all=False) if not e.orphan}
    states: list[IdleState] = []
    for record in ws.store.experiments():
        experiment = running.get(record.name)
        if experiment is None or record.status == "launching":
            continue
        try:
            if record.kind == "jupyter":
                idle, detail = jupyter_idle(ws, record, now)
            else:
                idle, detail = ssh_idle(ws, record, experiment.id, now)
        except PtdeskError as exc:
            idle, detail = None, exc.message
        states.append(IdleState(record.name, record.kind, record.owner, idle, detail))
    return states


def cull(ws: Workstation, limit: float, dry_run: bool = False, now: float | None = None) -> list[IdleState]:
    """Stop every experiment idle for longer than `limit` seconds; returns each one's state."""
    out: list[IdleState] = []
    for state in idle_states(ws, now):
        culled = False
        if state.idle_seconds is not None and state.idle_seconds >= limit and not dry_run:
            try:
                experiments.stop(ws, state.name)
                ws.store.audit("cull", state.name, {"idle_seconds": round(state.idle_seconds),
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
