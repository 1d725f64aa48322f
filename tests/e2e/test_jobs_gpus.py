"""Batch jobs on GPUs (the GPU test engine, an NVML scenario of two GPUs): a 2×2 sweep makes four
jobs with four output folders that run two at a time, the queued ones starting as GPUs free; a
queued job can be cancelled; a job --like an experiment sees what was installed in it live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import wait_until

pytestmark = pytest.mark.engine

# Each job says which GPU it got, then runs until the test lets it end (a file in its output folder).
HOLD = 'echo "$NVIDIA_VISIBLE_DEVICES" > "$PTDESK_OUTPUT/gpu"; until [ -e "$PTDESK_OUTPUT/end" ]; do sleep 0.2; done'


@pytest.fixture
def two_gpus(gpu_desk: GpuDesk) -> GpuDesk:
    from tests.support.nvml_scenarios import idle

    gpu_desk.install(idle(2))
    return gpu_desk


def run(desk: GpuDesk, *args: object) -> list[dict]:
    """`ptdesk run --json ARGS` (--json before the command's own `--`)."""
    return json.loads(desk.ok("run", "--json", *args))


def listed(desk: GpuDesk) -> dict[str, dict]:
    return {j["name"]: j for j in desk.json("jobs")}


def running(desk: GpuDesk, count: int) -> list[dict]:
    """Once exactly `count` jobs run and have said their GPU, those jobs (each command reconciles:
    ended jobs are kept and released, the queue's head admitted)."""
    now = [j for j in listed(desk).values() if j["status"] == "running" and (Path(j["output"]) / "gpu").exists()]
    return now if len(now) == count else []


def test_a_two_by_two_sweep_runs_two_at_a_time_on_two_gpus(two_gpus: GpuDesk, tmp_path: Path) -> None:
    desk = two_gpus
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.sh").write_text(HOLD + "\necho lr=$1 bs=$2\n")
    jobs = run(desk, "--name", "sw", "--gpus", "any:1", "--queue", "--cpus", "1", "--code", code,
                     "--sweep", "lr=1e-3,3e-4", "--sweep", "bs=32,64", "--", "sh", "train.sh", "{lr}", "{bs}")
    assert [j["name"] for j in jobs] == ["sw-1", "sw-2", "sw-3", "sw-4"]
    assert len({j["output"] for j in jobs}) == 4
    assert [j["command"][2:] for j in jobs] == [["1e-3", "32"], ["1e-3", "64"], ["3e-4", "32"], ["3e-4", "64"]]
    assert sorted(j["status"].split(" #")[0] for j in jobs) == ["queued", "queued", "running", "running"]
    first = wait_until(lambda: running(desk, 2), timeout=60, message="two jobs running")
    assert sorted(Path(j["output"], "gpu").read_text().strip() for j in first) == ["0", "1"]
    # A fifth job waits too; cancelled in the queue, it never runs and leaves nothing on the engine.
    extra = run(desk, "--name", "later", "--gpus", "any:1", "--queue", "--code", code, "--", "true")[0]
    assert extra["status"].startswith("queued")
    assert "later cancelled" in desk.ok("cancel", "later")
    assert listed(desk)["later"]["status"] == "cancelled"
    assert not [c for c in desk.engine.list_managed(desk.instance) if c["Labels"].get("ptdesk.name") == "later"]

    for job in first:
        Path(job["output"], "end").touch()
    second = wait_until(lambda: running(desk, 2) if {j["name"] for j in running(desk, 2)}.isdisjoint(
        {j["name"] for j in first}) else [], timeout=60, message="the queued two to start as GPUs free")
    for job in second:
        Path(job["output"], "end").touch()
    done = wait_until(lambda: [j for j in listed(desk).values() if j["sweep"] == "sw" and j["status"] == "succeeded"]
                      if all(j["status"] == "succeeded" for j in listed(desk).values() if j["sweep"] == "sw")
                      else [], timeout=60, message="the sweep to finish")
    assert len(done) == 4 and all(len(j["gpus"]) == 1 and j["gpu_hours"] > 0 for j in done)
    assert "lr=3e-4 bs=64" in desk.ok("logs", "sw-4")
    table = desk.ok("jobs")
    assert "lr=1e-3 bs=32" in table and "succeeded" in table


def test_cancel_says_when_a_process_of_the_job_is_still_on_its_gpu(two_gpus: GpuDesk, tmp_path: Path) -> None:
    """What NVML reports after a cancel is checked: nothing on the GPU, or the job's process that
    is still there (a pid stuck in the driver), with its memory."""
    from tests.support.nvml_scenarios import FakeProc, GiB

    desk = two_gpus
    code = tmp_path / "code"
    code.mkdir()
    first = run(desk, "--name", "clean", "--gpus", "0", "--grace", "1", "--code", code, "--", "sleep", "600")[0]
    assert first["gpus"] == [0]
    assert "Nothing of it is left on its GPUs." in desk.ok("cancel", "clean")
    run(desk, "--name", "stuck", "--gpus", "1", "--grace", "1", "--code", code, "--", "sleep", "600")
    container = next(c["Id"] for c in desk.engine.list_managed(desk.instance)
                     if c["Labels"].get("ptdesk.name") == "stuck")
    pid = max(desk.engine.top_pids(container))  # the command (after the container's init)
    desk.scenario.gpus[1].compute = [FakeProc(pid, 3 * GiB)]  # the driver still lists it after the end
    said = desk.ok("cancel", "stuck")
    assert f"still on its GPUs: pid {pid} on GPU 1 (3.0 GiB)" in said
    assert f"pid {pid} on GPU 1" in desk.ok("jobs")


def test_jobs_keeps_the_peak_gpu_memory_the_sampler_saw_while_it_ran(two_gpus: GpuDesk, tmp_path: Path) -> None:
    """NVML's per-process memory, attributed to the job's container, becomes the record's peak: it
    grows with a bigger sample, stays when the use drops, and is still there after the job ended."""
    from tests.support.nvml_scenarios import FakeProc, GiB

    desk = two_gpus
    code = tmp_path / "code"
    code.mkdir()
    run(desk, "--name", "big", "--gpus", "0", "--grace", "1", "--code", code, "--", "sleep", "600")
    container = next(c["Id"] for c in desk.engine.list_managed(desk.instance)
                     if c["Labels"].get("ptdesk.name") == "big")
    pid = max(desk.engine.top_pids(container))
    assert listed(desk)["big"]["peak_gpu_memory"] is None  # nothing on its GPU yet
    desk.scenario.gpus[0].compute = [FakeProc(pid, 5 * GiB)]
    assert listed(desk)["big"]["peak_gpu_memory"] == 5 * GiB
    desk.scenario.gpus[0].compute = [FakeProc(pid, 2 * GiB)]
    assert listed(desk)["big"]["peak_gpu_memory"] == 5 * GiB  # a peak: a smaller sample does not lower it
    desk.scenario.gpus[0].compute = []
    desk.ok("cancel", "big")
    ended = listed(desk)["big"]
    assert ended["status"] == "cancelled" and ended["peak_gpu_memory"] == 5 * GiB
    assert "5.0 GiB" in desk.ok("jobs")
