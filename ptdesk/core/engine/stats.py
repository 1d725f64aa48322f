"""CPU %, memory and start time of the running containers of an engine whose cgroup files are on
another machine (an ssh:// workstation): asked of the engine, one request per container per sample.

The engine's one-shot stats (API 1.41) answer at once, without the second it otherwise waits for
a CPU delta; the CPU % comes from two reads of our own, as with the local cgroup files
(ptdesk.core.host.cgroups). The start time only changes when a container starts again, which takes it
out of the running set first: it is inspected once per run and kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ptdesk.core.base.times import parse_time
from ptdesk.core.host.cgroups import ContainerStats, CpuRead, cpu_percent
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.engine.client import Engine


class EngineStatsSampler:
    """Keeps each container's previous CPU read and its start time; called by one poller at a time."""

    def __init__(self, engine: Callable[[], Engine], clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._engine = engine
        self._clock = clock
        self._previous: dict[str, CpuRead] = {}
        self._started: dict[str, float | None] = {}

    def sample(self, container_ids: Iterable[str]) -> dict[str, ContainerStats]:
        """Figures of the given (running) containers; never raises (unknown values are None, and
        an engine that does not answer gives no figures: the table keeps its last ones)."""
        out: dict[str, ContainerStats] = {}
        ids = list(container_ids)
        try:
            engine = self._engine()
        except PtdeskError:
            return out
        for cid in ids:
            try:
                out[cid] = self._one(engine, cid)
            except PtdeskError:
                continue  # this one could not be read now; the others still are
        for gone in set(self._previous) - set(ids):
            del self._previous[gone]
        for gone in set(self._started) - set(ids):
            del self._started[gone]
        return out

    def _one(self, engine: Engine, cid: str) -> ContainerStats:
        raw = engine.stats_once(cid)
        now = self._clock()
        if raw is None:  # gone since it was listed
            return ContainerStats(cid, None, None, None, None)
        cpu_ns = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        percent = cpu_percent(self._previous.get(cid), cpu_ns, now)
        self._previous[cid] = CpuRead(cpu_ns, now)
        memory_stats = raw.get("memory_stats") or {}
        usage, limit = memory_stats.get("usage"), memory_stats.get("limit")
        detail = memory_stats.get("stats") or {}
        inactive = detail.get("inactive_file", detail.get("total_inactive_file"))  # cgroup v2, v1
        if usage is not None and inactive is not None and inactive < usage:
            usage -= inactive
        if cid not in self._started:
            state = (engine.try_inspect(cid) or {}).get("State") or {}
            self._started[cid] = parse_time(state.get("StartedAt"))
        return ContainerStats(cid, percent, usage, limit, self._started[cid])
