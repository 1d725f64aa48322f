"""What the dashboard last heard from each workstation: its engine, its experiments, its GPU count.

The main screen keeps one BoxState per workstation (in config order) and draws the merged
picture from them: every experiment with where it runs, which workstations do not answer, the top
bar's counts. One box going quiet changes only its own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text

from ptdesk.core.base.models import Experiment
from ptdesk.tui.format import count

if TYPE_CHECKING:
    from ptdesk.core.host.cgroups import ContainerStats
    from ptdesk.core.workstation import Workstation

JOB = "job"  # the job kind's rows (ptdesk.core.kinds.job): running, queued, or ended (their records)


@dataclass
class BoxState:
    """One workstation, as its feeds last said."""

    name: str
    engine_up: bool | None = None  # None: not known yet
    reason: str | None = None  # why its engine does not answer
    version: str | None = None
    experiments: tuple[Experiment, ...] = ()
    listed: bool = False  # its first list arrived
    gpu_count: int | None = None
    stats: dict[str, ContainerStats] = field(default_factory=dict)


class Boxes:
    """Every workstation's BoxState, in the order the dashboard shows them."""

    def __init__(self, names: Sequence[str]) -> None:
        self.states = {name: BoxState(name) for name in names}

    def __getitem__(self, name: str) -> BoxState:
        return self.states[name]

    @property
    def several(self) -> bool:
        return len(self.states) > 1

    def rows(self) -> list[tuple[str, Experiment]]:
        """(workstation, experiment) for every experiment, workstation by workstation."""
        return [(s.name, e) for s in self.states.values() for e in s.experiments]

    def experiments(self) -> tuple[Experiment, ...]:
        return tuple(e for s in self.states.values() for e in s.experiments)

    def unreachable(self) -> frozenset[str]:
        return frozenset(s.name for s in self.states.values() if s.engine_up is False)

    def stats(self) -> dict[str, ContainerStats]:
        """Container id -> figures, of every workstation (ids are unique across engines)."""
        return {cid: st for s in self.states.values() for cid, st in s.stats.items()}

    @property
    def listed(self) -> bool:
        """Some workstation's list arrived (a dead one must not keep the empty-state line away)."""
        return any(s.listed for s in self.states.values())

    def top_bar(self, hostname: str, instance: str, default: str, width: int | None = None) -> Text:
        """Host, engine(s), experiments, jobs (their rows, ended ones too, are not experiments), GPUs.
        `width`: the columns it has; what does not fit gives way, least useful first (the engine's
        version, the "ptdesk" label, the host name), so the counts are never the part cut off."""
        items = [e for e in self.experiments() if e.kind != JOB]
        jobs = [e for e in self.experiments() if e.kind == JOB]
        running = sum(1 for e in items if e.status == "running")
        working = sum(1 for e in jobs if e.status == "running")
        counts = [s.gpu_count for s in self.states.values() if s.gpu_count is not None]
        gpus = count(sum(counts), "GPU") if counts else "GPUs: N/A"
        figures = (f"{count(len(items), 'experiment')} ({running} running) · "
                   + (f"{count(len(jobs), 'job')} ({working} running) · " if jobs else "") + gpus)
        label, host, engine, version = "ptdesk ", f"· {hostname} · ", *self._engine(default)
        extra = f" · instance {instance}" if instance != "default" else ""
        for shorter in ("version", "label", "host"):
            if width is None or len(label + host + engine + version + " · " + figures + extra) <= width:
                break
            if shorter == "version":
                version = ""
            elif shorter == "label":
                label, host = "", host.removeprefix("· ")
            else:
                host = ""
        return Text.assemble((label, "bold"), f"{host}{engine}{version} · {figures}", (extra, "dim"))

    def _engine(self, default: str) -> tuple[str, str]:
        """The engine part of the top bar: (what it is, its version or what is wrong)."""
        if self.several:
            down = sorted(self.unreachable())
            # which ones do not answer is never what gives way
            return count(len(self.states), "workstation") + (f" ({', '.join(down)} unreachable)" if down else ""), ""
        state = self.states[default]
        if state.version and state.engine_up:
            return "Docker", f" {state.version}"
        return ("Docker: unreachable" if state.engine_up is False else "Docker: connecting…"), ""


def remembered(ws: Workstation) -> tuple[Experiment, ...]:
    """What this home recorded on a workstation whose engine does not answer (read from its store:
    no engine asked), so that a dashboard opened while the engine is down shows the experiments as
    unreachable, as `ptdesk ls` lists them, instead of an empty table that reads as "all gone"."""
    if not ws.config.state_path.exists():
        return ()
    try:
        records = ws.store.experiments()
    except Exception:  # noqa: BLE001 - an unreadable store leaves the table as it was, never the dashboard
        return ()
    return tuple(Experiment(r.name, r.container_id or "", r.kind, r.owner, r.image, r.status, r.gpus, r.created,
                            r.workspace) for r in records)

