"""A cull people accept: idle means what the team configured per kind ([cull] in config.toml) —
no Jupyter/SSH activity for `idle` AND every GPU of the experiment under `gpu_below` % over
`gpu_window` (dstack-style; a window not yet seen whole is not idle) — and nothing is stopped
without a warning first: the person's routes, their open terminals in it (as `wall`), the
dashboard, with the deadline and how to keep it. `ptdesk keep NAME [FOR]` extends it up to
`keep_max`; activity cancels the warning. Stopping keeps the disk; the GPUs are free after the hold.

Where it stands is kept in the store's meta (deadline and keep per experiment), so `ptdesk cull
--dry-run`, the watcher and the dashboard read one truth, and the clock is ptdesk.core.base.clock.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ptdesk.config import Config
from ptdesk.core.base import clock
from ptdesk.core.base.durations import parse_duration
from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.experiments import operations
from ptdesk.core.experiments.cull import idle_states
from ptdesk.core.kinds import get_kind
from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import Said, announce
from ptdesk.core.notify.people import warn_everyone
from ptdesk.core.site import Site
from ptdesk.errors import InvalidInput, NotFound, PtdeskError

DEFAULTS = {"gpu_below": "5", "gpu_window": "30m", "warn": "15m", "keep_max": "8h"}
DEADLINE = "cull.deadline."
KEPT = "cull.keep."


@dataclass(frozen=True)
class CullPolicy:
    idle: float
    gpu_below: float
    gpu_window: float
    warn: float
    keep_max: float


def policy_for(config: Config, kind: str) -> CullPolicy | None:
    """The kind's policy; None when no idle limit is set for it, or the kind is never culled (a job)."""
    if not _cullable(kind):
        return None
    values = {**DEFAULTS, **config.cull.get("*", {}), **config.cull.get(kind, {})}
    if "idle" not in values:
        if config.idle_cull_seconds <= 0:
            return None
        values["idle"] = f"{config.idle_cull_seconds}s"
    return CullPolicy(parse_duration(values["idle"]), float(values["gpu_below"]),
                      parse_duration(values["gpu_window"]), _duration_or_zero(values["warn"]),
                      parse_duration(values["keep_max"]))


def _cullable(kind: str) -> bool:
    try:
        return get_kind(kind).cullable
    except PtdeskError:
        return True  # a kind this ptdesk does not know: its experiments are judged as any other


def _duration_or_zero(text: str) -> float:
    return 0.0 if text.strip().rstrip("smhdw").strip() in ("0", "0.0") else parse_duration(text)


@dataclass
class GpuWindow:
    """Utilisation per GPU index over the last hours, from the samples the watcher takes."""

    samples: deque[tuple[float, dict[int, int | None]]] = field(default_factory=lambda: deque(maxlen=4096))

    def add(self, snapshot: GpuSnapshot) -> None:
        # The cull's clock, not the sample's own stamp: deadlines and windows are read on one clock.
        self.samples.append((clock.now(),
                             {g.index: (None if g.error else g.utilization) for g in snapshot.gpus if not g.is_mig}))

    def idle(self, gpus: tuple[int, ...], below: float, window: float, now: float) -> bool:
        """Every one of `gpus` read under `below` % in every sample of the window, and the window seen
        whole; an unread value is not idle."""
        if not gpus:
            return True
        if not self.samples or self.samples[0][0] > now - window:
            return False
        recent = [values for taken, values in self.samples if taken >= now - window]
        return bool(recent) and all((v := values.get(i)) is not None and v < below for values in recent for i in gpus)


@dataclass(frozen=True)
class CullPlan:
    """Where one running experiment stands."""

    name: str
    kind: str
    owner: str
    idle_seconds: float | None
    action: str  # "-" (active or no policy), "warn" (now), "warned" (deadline set), "stop" (due), "kept"
    deadline: float | None = None  # when it will be stopped
    kept_until: float | None = None
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "owner": self.owner, "idle_seconds": self.idle_seconds,
                "action": self.action, "deadline": self.deadline, "kept_until": self.kept_until,
                "detail": self.detail}


def _meta_time(site: Site, key: str) -> float | None:
    try:
        return float(site.store.get_meta(key) or "")
    except ValueError:
        return None


def plan(site: Site, window: GpuWindow, now: float | None = None, whole_window: bool = True) -> list[CullPlan]:
    """Where every running experiment stands; nothing is changed. `whole_window` False: judge the
    GPUs by what the window holds (a one-shot `cull --dry-run` has one sample, the watcher hours)."""
    now = clock.now() if now is None else now
    records = {r.name: r for r in site.store.experiments()}
    out = []
    for state in idle_states(site, now):
        record, policy = records.get(state.name), policy_for(site.config, state.kind)
        base = dict(name=state.name, kind=state.kind, owner=state.owner, idle_seconds=state.idle_seconds)
        if record is None or policy is None:
            # Short: the view's last column at 80 columns ("a job experiments" read oddly, and was cut).
            why = f"never culled: a {state.kind} ends by itself" if not _cullable(state.kind) \
                else f"no idle limit for {state.kind} experiments"
            out.append(CullPlan(**base, action="-", detail=why))
            continue
        kept, deadline = _meta_time(site, KEPT + state.name), _meta_time(site, DEADLINE + state.name)
        span = policy.gpu_window if whole_window else now - (window.samples[0][0] if window.samples else now)
        if kept is not None and kept > now:
            out.append(CullPlan(**base, action="kept", kept_until=kept, detail="kept with ptdesk keep"))
        elif state.idle_seconds is None or state.idle_seconds < policy.idle:
            out.append(CullPlan(**base, action="-", detail=state.detail))
        elif not window.idle(record.gpus, policy.gpu_below, span, now):
            out.append(CullPlan(**base, action="-", detail=f"a GPU at {policy.gpu_below:g} % or more within "
                                                          f"{_human(policy.gpu_window)} (or not read yet)"))
        elif deadline is None:
            action = "stop" if policy.warn <= 0 else "warn"
            out.append(CullPlan(**base, action=action, deadline=now + policy.warn, detail=state.detail))
        else:
            out.append(CullPlan(**base, action="stop" if now >= deadline else "warned", deadline=deadline,
                                detail=state.detail))
    return out


def run(site: Site, window: GpuWindow, now: float | None = None) -> list[tuple[CullPlan, Said | None]]:
    """One round: warn the newly idle (once per box), stop those past their deadline, and forget the
    warning of any that became active or was kept."""
    now = clock.now() if now is None else now
    out: list[tuple[CullPlan, Said | None]] = []
    for item in plan(site, window, now):
        said = None
        if item.action in ("-", "kept"):
            if _meta_time(site, DEADLINE + item.name) is not None:
                site.store.set_meta(DEADLINE + item.name, "")  # active again, or kept: the warning is void
        elif item.action == "warn":
            site.store.set_meta(DEADLINE + item.name, repr(item.deadline))
            said = _warn(site, item, now)
        elif item.action == "stop":
            try:
                operations.stop(site, item.name)
            except PtdeskError:
                continue  # it went away meanwhile
            site.store.audit("cull", item.name, {"idle_seconds": round(item.idle_seconds or 0), "how": item.detail})
            site.store.set_meta(DEADLINE + item.name, "")
        out.append((item, said))
    return out


def _warn(site: Site, item: CullPlan, now: float) -> Said | None:
    record = site.store.experiment(item.name)
    policy = policy_for(site.config, item.kind)
    if record is None or policy is None or item.deadline is None:
        return None
    notice = cull_notice(item.name, item.deadline, item.idle_seconds or 0.0, policy)
    said = announce(site, f"cull:{record.container_id}:{item.deadline}", notice)
    # Everyone working in it reads it where they are: the owner's and collaborators' open
    # terminals in it, and each collaborator's own route.
    return warn_everyone(site, item.name, notice, now, said) if said is not None else None


def cull_notice(name: str, deadline: float, idle: float, policy: CullPolicy) -> Notice:
    at = time.strftime("%H:%M", time.localtime(deadline))
    return Notice("cull", f"ptdesk: '{name}' will be stopped at {at}",
                  f"'{name}' has been idle for {_human(idle)} (no activity, its GPUs under {policy.gpu_below:g} % "
                  f"for {_human(policy.gpu_window)}). It will be stopped at {at}; its disk and keys are kept. "
                  f"To keep it: ptdesk keep {name} [FOR] (up to {_human(policy.keep_max)}), or use it.")


def keep(site: Site, name: str, seconds: float | None = None, now: float | None = None) -> float:
    """Keep `name` from the cull for `seconds` (default an hour, at most keep_max); returns until when."""
    now = clock.now() if now is None else now
    record = site.store.experiment(name)
    if record is None:
        raise NotFound(f"There is no experiment named '{name}'.", "See them with: ptdesk ls")
    if not _cullable(record.kind):
        raise PtdeskError(f"The idle cull never stops '{name}' (a {record.kind}: it ends by itself), so it needs "
                          "no keeping.", "A job ends at its --time-limit; end it sooner with: ptdesk cancel "
                          f"{name}")
    policy = policy_for(site.config, record.kind)
    if policy is None:
        raise PtdeskError(f"Nothing culls {record.kind} experiments here, so '{name}' needs no keeping.",
                          "Set [cull] idle in config.toml to cull idle experiments.")
    seconds = min(3600.0, policy.keep_max) if seconds is None else seconds
    if seconds > policy.keep_max:
        raise InvalidInput(f"'{name}' can be kept for at most {_human(policy.keep_max)} at a time (keep_max).",
                           f"Run: ptdesk keep {name} {_human(policy.keep_max)}, and again when it ends.")
    site.store.set_meta(KEPT + name, repr(now + seconds))
    site.store.set_meta(DEADLINE + name, "")
    site.store.audit("keep", name, {"seconds": round(seconds)})
    return now + seconds


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:g}h" if seconds % 3600 == 0 else f"{seconds / 3600:.1f}h"
