"""ptdesk.core.host.cgroups: per-container CPU/memory from the cgroup files (v1 here, v2 from fixtures)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from ptdesk.core.engine.stats import EngineStatsSampler
from ptdesk.core.host.cgroups import StatsSampler
from tests.support.helpers import cgroup_tree, wait_until

CID = "a" * 64


class StepClock:
    def __init__(self) -> None:
        self.now = 10_000_000_000

    def __call__(self) -> int:
        return self.now


def test_v1_files_cpu_from_two_samples_memory_without_cache(tmp_path: Path):
    cgroup, proc = cgroup_tree(tmp_path, {CID: {"cpu_ns": 1_000_000_000, "memory": 300 * 2**20,
                                                 "inactive": 100 * 2**20, "limit": 2**62, "pid": 77,
                                                 "start_ticks": 500}}, btime=1_700_000_000)
    clock = StepClock()
    sampler = StatsSampler(root=cgroup, proc=proc, clock=clock)
    first = sampler.sample([CID])[CID]
    assert first.cpu_percent is None  # one sample cannot give a rate
    assert first.memory == 200 * 2**20  # usage minus inactive page cache, as docker stats shows
    assert first.memory_limit is None  # v1's huge number means unlimited
    assert first.started == 1_700_000_000 + 500 / 100
    (cgroup / "cpuacct" / "docker" / CID / "cpuacct.usage").write_text("2500000000\n")
    clock.now += 2_000_000_000
    assert sampler.sample([CID])[CID].cpu_percent == 75.0  # 1.5 s of CPU in 2 s of wall time


def test_v2_files(tmp_path: Path):
    root = tmp_path / "cgroup"
    scope = root / "system.slice" / f"docker-{CID}.scope"
    scope.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (scope / "cpu.stat").write_text("usage_usec 4000000\nuser_usec 3000000\nsystem_usec 1000000\n")
    (scope / "memory.current").write_text(f"{64 * 2**20}\n")
    (scope / "memory.stat").write_text(f"anon 1\ninactive_file {16 * 2**20}\n")
    (scope / "memory.max").write_text("max\n")
    clock = StepClock()
    sampler = StatsSampler(root=root, proc=tmp_path / "proc", clock=clock)
    first = sampler.sample([CID])[CID]
    assert (first.memory, first.memory_limit, first.cpu_percent) == (48 * 2**20, None, None)
    (scope / "cpu.stat").write_text("usage_usec 4500000\n")
    clock.now += 1_000_000_000
    assert sampler.sample([CID])[CID].cpu_percent == 50.0


def test_missing_container_is_values_not_errors(tmp_path: Path):
    sampler = StatsSampler(root=tmp_path, proc=tmp_path)
    stats = sampler.sample(["b" * 64])["b" * 64]
    assert (stats.cpu_percent, stats.memory, stats.started) == (None, None, None)


@pytest.mark.parametrize("source", ["cgroup files", "the engine"])
def test_real_containers_busy_and_idle(engine, sleeper, source):
    """The same figures from the cgroup files (local) and from the engine's one-shot stats (how a
    remote workstation's are read, its files being there)."""
    busy = sleeper("busy", script="while :; do :; done")
    idle = sleeper("idle")
    sampler = StatsSampler() if source == "cgroup files" else EngineStatsSampler(lambda: engine)
    sampler.sample([busy, idle])

    def measured():
        # The idle container's own start-up (runc, sh, sleep) may fall into the first interval:
        # wait until both have settled into what they are.
        stats = sampler.sample([busy, idle])
        busy_cpu, idle_cpu = stats[busy].cpu_percent, stats[idle].cpu_percent
        settled = busy_cpu is not None and busy_cpu > 20 and idle_cpu is not None and idle_cpu < 5
        return stats if settled else None

    stats = wait_until(measured, timeout=20, interval=0.5, message="busy to show CPU use and idle none")
    assert stats[busy].memory and stats[busy].memory < 256 * 2**20
    assert stats[busy].memory_limit == 256 * 2**20  # the fixture's mem_limit, read from the cgroup
    started_at = engine.inspect(busy)["State"]["StartedAt"][:26].rstrip("Z")
    engine_started = datetime.fromisoformat(started_at + "+00:00").timestamp()
    assert abs(stats[busy].started - engine_started) < 2.0
    assert stats[busy].started <= time.time()


def test_uptime_after_pid_wrap_around_is_the_inits_start(tmp_path: Path):
    """cgroup v1 lists pids sorted: after wrap-around a young process (pid 12) comes before the
    container's init (pid 40000), which started first."""
    cgroup, proc = cgroup_tree(tmp_path, {CID: {"cpu_ns": 1, "memory": 1, "inactive": 0, "limit": 2**62,
                                                 "pid": 40000, "start_ticks": 500}}, btime=1_700_000_000)
    (cgroup / "cpuacct" / "docker" / CID / "cgroup.procs").write_text("12\n40000\n")
    (proc / "12").mkdir()
    (proc / "12" / "stat").write_text("12 (python train.py) S " + " ".join(["0"] * 18) + " 900000 0\n")
    assert StatsSampler(root=cgroup, proc=proc).sample([CID])[CID].started == 1_700_000_000 + 500 / 100
