"""Per-container CPU and memory straight from the cgroup files, in microseconds.

`docker stats` (and the SDK's `container.stats`) makes the engine wait for two samples of its own:
1-2 s per container. The numbers live in the container's cgroup, so we read them ourselves and
compute CPU% from two of *our* samples: the first sample of a container has no CPU% (None, shown
as N/A), every later one does.

cgroup v1 (cgroupfs driver):  /sys/fs/cgroup/cpuacct/docker/<id>/cpuacct.usage (ns),
                              /sys/fs/cgroup/memory/docker/<id>/memory.{usage_in_bytes,limit_in_bytes,stat}
cgroup v1 (systemd driver):   .../system.slice/docker-<id>.scope/ under the same controllers
cgroup v2:                    /sys/fs/cgroup/system.slice/docker-<id>.scope/{cpu.stat,memory.current,memory.max}
                              or /sys/fs/cgroup/docker/<id>/ (cgroupfs driver)

Memory is reported as docker stats does: usage minus the inactive page cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
# v1 reports "no limit" as a huge page-aligned number rather than a word.
_UNLIMITED_V1 = 1 << 60


@dataclass(frozen=True)
class ContainerStats:
    id: str
    cpu_percent: float | None  # percent of one core (can exceed 100), like docker stats; None = unknown yet
    memory: int | None  # bytes in use, without inactive page cache
    memory_limit: int | None  # bytes; None when unlimited or unreadable
    started: float | None  # epoch seconds when the container's first process started
    # Processes the memory limit killed inside it so far (any process, not only PID 1, which is all
    # `docker inspect`'s OOMKilled covers); None when unreadable.
    oom_kills: int | None = None


@dataclass(frozen=True)
class _Dirs:
    cpu: Path
    memory: Path
    v2: bool


@dataclass(frozen=True)
class CpuRead:
    """A container's CPU time used so far, and when that was read (monotonic)."""

    cpu_ns: int | None
    at_ns: int


def cpu_percent(previous: CpuRead | None, cpu_ns: int | None, now_ns: int) -> float | None:
    """Percent of one core between two reads of our own (None until there are two)."""
    if previous is None or previous.cpu_ns is None or cpu_ns is None or now_ns <= previous.at_ns:
        return None
    return max(0.0, (cpu_ns - previous.cpu_ns) / (now_ns - previous.at_ns) * 100.0)


def _read(path: Path) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:  # container gone between listing and reading, or cgroup not mounted: unknown
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def _stat_value(text: str | None, key: str) -> int | None:
    """One `key value` line of memory.stat / cpu.stat."""
    if text is None:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _int(value)
    return None


class StatsSampler:
    """Keeps the previous CPU sample of each container so CPU% comes from two of our own reads.

    Thread-safe enough for one poller: `sample` is called from one worker at a time.
    """

    def __init__(self, root: Path = CGROUP_ROOT, proc: Path = PROC,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.root = root
        self.proc = proc
        self._clock = clock
        self._v2 = (root / "cgroup.controllers").exists()
        self._dirs: dict[str, _Dirs | None] = {}
        self._previous: dict[str, CpuRead] = {}
        self._boot_time: float | None = None
        self._start: dict[str, float | None] = {}  # container id -> its start, while it runs
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    # --- where a container's files are -----------------------------------------------------
    def _candidates(self, container_id: str) -> list[_Dirs]:
        root, scope = self.root, f"docker-{container_id}.scope"
        if self._v2:
            return [_Dirs(d, d, True) for d in (root / "system.slice" / scope, root / "docker" / container_id)]
        out = []
        for cpu_controller in ("cpuacct", "cpu,cpuacct"):
            for sub in (Path("docker") / container_id, Path("system.slice") / scope):
                out.append(_Dirs(root / cpu_controller / sub, root / "memory" / sub, False))
        return out

    def _locate(self, container_id: str) -> _Dirs | None:
        if container_id not in self._dirs or self._dirs[container_id] is None:
            found = None
            for dirs in self._candidates(container_id):
                if dirs.cpu.is_dir():
                    found = dirs
                    break
            self._dirs[container_id] = found
        return self._dirs[container_id]

    # --- reading ---------------------------------------------------------------------------
    def _cpu_ns(self, dirs: _Dirs) -> int | None:
        if dirs.v2:
            usec = _stat_value(_read(dirs.cpu / "cpu.stat"), "usage_usec")
            return usec * 1000 if usec is not None else None
        return _int(_read(dirs.cpu / "cpuacct.usage"))

    def _memory(self, dirs: _Dirs) -> tuple[int | None, int | None]:
        if dirs.v2:
            usage = _int(_read(dirs.memory / "memory.current"))
            inactive = _stat_value(_read(dirs.memory / "memory.stat"), "inactive_file")
            limit = _int(_read(dirs.memory / "memory.max"))  # "max" -> None
        else:
            usage = _int(_read(dirs.memory / "memory.usage_in_bytes"))
            inactive = _stat_value(_read(dirs.memory / "memory.stat"), "total_inactive_file")
            limit = _int(_read(dirs.memory / "memory.limit_in_bytes"))
            if limit is not None and limit >= _UNLIMITED_V1:
                limit = None
        if usage is not None and inactive is not None and inactive < usage:
            usage -= inactive
        return usage, limit

    def _oom_kills(self, dirs: _Dirs) -> int | None:
        if dirs.v2:
            return _stat_value(_read(dirs.memory / "memory.events"), "oom_kill")
        return _stat_value(_read(dirs.memory / "memory.oom_control"), "oom_kill")

    def _started(self, container_id: str, dirs: _Dirs) -> float | None:
        """When the container started: the earliest start among its processes (its init), found once
        per run of the container. Not the first pid listed: cgroup v1 lists `cgroup.procs` sorted by
        pid, and after the kernel's pids wrap around, the init is not the lowest."""
        if self._start.get(container_id) is None:
            ticks = [t for pid in (_read(dirs.cpu / "cgroup.procs") or "").split() if (t := self._ticks_of(pid))]
            self._start[container_id] = self._boot() + min(ticks) / self._ticks if ticks else None
        return self._start[container_id]

    def _ticks_of(self, pid: str) -> int | None:
        """/proc/<pid>/stat field 22: the process's start, in clock ticks after boot."""
        stat = _read(self.proc / pid / "stat") if pid.isdigit() else None
        # The command name (field 2) may contain spaces: count fields after its closing paren.
        fields = (stat or "").rpartition(")")[2].split()
        return int(fields[19]) if len(fields) >= 20 and fields[19].isdigit() else None

    def _boot(self) -> float:
        if self._boot_time is None:
            btime = _stat_value(_read(self.proc / "stat"), "btime")
            self._boot_time = float(btime) if btime is not None else 0.0
        return self._boot_time

    def sample(self, container_ids: Iterable[str]) -> dict[str, ContainerStats]:
        """Stats of the given (running) containers now. Never raises; unknown values are None."""
        now = self._clock()
        out: dict[str, ContainerStats] = {}
        seen: set[str] = set()
        for cid in container_ids:
            seen.add(cid)
            dirs = self._locate(cid)
            if dirs is None:
                out[cid] = ContainerStats(cid, None, None, None, None)
                continue
            cpu_ns = self._cpu_ns(dirs)
            if cpu_ns is None:  # the cgroup vanished (container stopped): look it up afresh next time
                self._dirs.pop(cid, None)
                self._start.pop(cid, None)
            percent = cpu_percent(self._previous.get(cid), cpu_ns, now)
            self._previous[cid] = CpuRead(cpu_ns, now)
            memory, limit = self._memory(dirs)
            out[cid] = ContainerStats(cid, percent, memory, limit, self._started(cid, dirs), self._oom_kills(dirs))
        # Forget containers that are no longer asked about, so the cache stays bounded.
        for gone in set(self._previous) - seen:
            del self._previous[gone]
        for gone in set(self._dirs) - seen:
            del self._dirs[gone]
        for gone in set(self._start) - seen:
            del self._start[gone]
        return out
