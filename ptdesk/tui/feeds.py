"""What the dashboard's thread workers call: core functions in, immutable views out.

Nothing here imports Textual, so the benchmark (bench/dashboard.py) measures exactly the work one
dashboard refresh does, and the engine/NVML calls stay out of the UI thread.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ptdesk.core.desk import Desk
from ptdesk.core.models import Experiment, GpuSnapshot
from ptdesk.core.stats import ContainerStats, StatsSampler
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.lifecycle import ContainerEvent


@dataclass(frozen=True)
class EngineInfo:
    host: str
    version: str  # the engine's version, e.g. 20.10.24


@dataclass(frozen=True)
class GpuView:
    snapshot: GpuSnapshot
    # uuid -> recent utilisation (percent, None where unread), oldest first, for the sparklines
    history: dict[str, tuple[float | None, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Refresh:
    experiments: tuple[Experiment, ...]
    stats: dict[str, ContainerStats]
    gpus: GpuView


def engine_info(desk: Desk) -> EngineInfo:
    version = desk.engine.version()
    return EngineInfo(host=socket.gethostname(), version=str(version.get("Version", "?")))


def list_experiments(desk: Desk) -> tuple[Experiment, ...]:
    from ptdesk.core import experiments

    return tuple(experiments.list_experiments(desk, all=True))


def container_stats(sampler: StatsSampler, items: tuple[Experiment, ...]) -> dict[str, ContainerStats]:
    """CPU/memory/start time of the running ones, from cgroup files (microseconds, no engine call)."""
    return sampler.sample(e.id for e in items if e.id and e.status == "running")


def sample_gpus(desk: Desk, engine_up: bool) -> GpuView:
    """One NVML sample with owners filled in; never raises (a broken GPU stack is a value)."""
    from ptdesk.core import procmap

    sampler = desk.gpus
    snapshot = sampler.sample()
    engine = None
    if engine_up:
        try:
            engine = desk.engine
        except PtdeskError:
            engine = None
    snapshot = procmap.attribute(snapshot, engine, desk.config.instance, store=desk.store)
    history = {g.uuid: tuple(sampler.history(g.uuid)) for g in snapshot.gpus}
    return GpuView(snapshot, history)


def full_refresh(desk: Desk, stats: StatsSampler, engine_up: bool = True) -> Refresh:
    """Everything one dashboard tick shows: the list, per-container CPU/memory, a GPU sample."""
    items = list_experiments(desk)
    return Refresh(items, container_stats(stats, items), sample_gpus(desk, engine_up))


# --- the engine's event stream ------------------------------------------------------------------
OnEvent = Callable[["ContainerEvent"], None]
OnEngine = Callable[[bool, str | None], None]


def watch_events(desk: Desk, on_event: OnEvent, on_engine: OnEngine, stop: threading.Event) -> None:
    """Follow the engine's events until `stop` is set, telling `on_engine` when it goes and comes back.

    The lifecycle module's EventWatcher does the real work (cleanup on die/destroy, reconnect with
    `since=`, reconciliation on reconnect); this only adapts its callbacks for the dashboard.
    """
    from ptdesk.core.lifecycle import EventWatcher

    EventWatcher(desk, on_event=on_event, on_engine=on_engine).run(stop)
