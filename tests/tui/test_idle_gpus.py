"""GPUs that hold memory at 0 % utilisation for long are flagged on their GPU panel row.

The judge is ptdesk.core.experiments.cull.idle_gpus (the dashboard asks it through the Workstation); the
dashboard keeps a thinned history for it (tui.feeds.IdleGpus). Time is injected through the
sampler's clock, never waited for.
"""

from __future__ import annotations

import itertools
import random

import pytest

import ptdesk.tui.live as live_module
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.experiments.cull import idle_gpus
from ptdesk.core.gpu.nvml import GpuSampler
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.feeds import IdleGpus
from tests.support.tuihelpers import nvml_scenarios, settle

GiB = 2**30


def _sample(uuid: str, index: int, state: str, parent: int | None = None) -> GpuSample:
    """A GPU that is busy, idle holding memory, idle holding nothing, or unreadable."""
    busy = state == "busy"
    holds = state in ("busy", "idle-holding")
    return GpuSample(index=index, uuid=uuid, name="H100", utilization=None if state == "lost" else 40 if busy else 0,
                     memory_used=4 * GiB if holds else 0, memory_total=80 * GiB, parent=parent,
                     mig_index=0 if parent is not None else None, error="lost" if state == "lost" else None,
                     processes=(GpuProcess(pid=100 + index, used_memory=GiB),) if holds else ())


@pytest.mark.parametrize("seed", range(20))
def test_thinned_history_judges_like_the_full_one(seed):
    """IdleGpus keeps a few snapshots, yet says exactly what idle_gpus says on every sample."""
    rng = random.Random(seed)
    states = ("busy", "idle-holding", "idle-empty", "lost")
    full: list[GpuSnapshot] = []
    watch = IdleGpus(idle_gpus)
    now = 1000.0
    runs = [rng.choice(states) for _ in range(3)]
    for _ in range(400):
        now += rng.choice((1.0, 1.0, 30.0, 300.0))
        runs = [s if rng.random() < 0.9 else rng.choice(states) for s in runs]
        gpus = [_sample(f"GPU-{i}", i, s) for i, s in enumerate(runs)]
        if rng.random() < 0.05:
            gpus = gpus[:2]  # a GPU falls off the bus for a sample
        gpus.append(_sample("MIG-0", 0, runs[0], parent=0))
        snapshot = GpuSnapshot(True, None, "580", tuple(gpus), now)
        full.append(snapshot)
        assert watch.add(snapshot) == idle_gpus(full)
    assert len(watch._kept) < 100  # thinned: not one snapshot per sample


def test_idle_history_stays_small_while_nothing_changes():
    watch = IdleGpus(idle_gpus)
    for second in range(5000):
        flagged = watch.add(GpuSnapshot(True, None, "580", (_sample("GPU-0", 0, "idle-holding"),), float(second)))
    assert flagged == {"0": 4999.0}
    assert len(watch._kept) == 2  # the start of the run and the newest sample


async def test_gpu_panel_flags_a_gpu_idle_with_memory_held(tui_desk, nvml, monkeypatch):
    scenario = nvml_scenarios.healthy(gpus=2)
    scenario.gpus[1].util = 0  # holds 2 GiB and a process, computes nothing
    nvml(scenario)
    # Each sample is five minutes after the one before: half an hour passes in seven samples.
    tui_desk.gpus = GpuSampler(clock=itertools.count(1_700_000_000, 300).__next__)
    monkeypatch.setattr(live_module, "GPU_INTERVAL", 0.05)
    app = PtdeskApp(tui_desk, watch_events=False)
    async with app.run_test(size=(160, 48)) as pilot:

        def users(label: int) -> str:
            # The users cell of each row, once the rows are composed (a row is mounted before its cells).
            cells = list(app.query(".gpu-users"))
            return str(cells[label].render()) if len(cells) == 2 else ""

        await settle(pilot, lambda: users(1).startswith("idle "), message="GPU 1 flagged idle")
        assert users(1).startswith(("idle 30m", "idle 35m", "idle 40m", "idle 45m")), users(1)
        assert users(1).endswith("pid 9999991")  # who holds it stays on the row
        await settle(pilot, lambda: users(1).startswith("idle 1h"), message="the idle time growing")
        assert not users(0).startswith("idle")  # GPU 0 computes: never flagged

        scenario.gpus[1].util = 55  # it starts working: the flag goes at once
        await settle(pilot, lambda: users(1) and not users(1).startswith("idle"), message="the flag to go")
