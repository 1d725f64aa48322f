"""The GPU test engine itself: an SSH experiment asked for GPUs 0 and 2 really runs with them."""

from __future__ import annotations

from e2e.gpu_engine import GpuDesk


def test_an_experiment_on_gpus_0_and_2_really_runs_with_them(gpu_desk: GpuDesk) -> None:
    made = gpu_desk.new("--name", "g1", "--gpus", "0,2")
    assert made["gpus"] == [0, 2] and made["status"] == "running"
    assert gpu_desk.engine.is_running(made["id"])
    assert gpu_desk.device_ids(made["id"]) == ["0", "2"]
    assert gpu_desk.gpu_env(made["id"]) == "0,2"  # what the NVIDIA runtime would hand CUDA
    # The ledger sees the hold: GPU 0 cannot be given again.
    assert "GPU 0 is held by experiment 'g1'" in gpu_desk.fails("new", "ssh", "--name", "g2", "--gpus", "0")[0]
