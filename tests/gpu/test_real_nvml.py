"""The real NVML path, on a machine with an NVIDIA GPU (skipped everywhere else).

Run with `pytest -m gpu tests/gpu` (scripts/gpu-check does, on a lent GPU machine).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time

import pynvml
import pytest

from ptdesk.core.gpu.ledger import allocate
from ptdesk.core.gpu.nvml import GpuSampler, inventory_of
from ptdesk.core.gpu.procmap import attribute


def _nvml_works() -> str | None:
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # any failure means: no usable GPU here
        return str(exc)
    pynvml.nvmlShutdown()
    return None


_WHY_NOT = _nvml_works()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_WHY_NOT is not None, reason=f"no usable NVML: {_WHY_NOT}")]


@pytest.fixture(scope="module")
def sampler():
    with GpuSampler() as s:
        yield s


def test_snapshot_lists_every_gpu(sampler: GpuSampler) -> None:
    snap = sampler.sample()
    assert snap.available and snap.reason is None and snap.driver
    assert len(snap.physical) == pynvml.nvmlDeviceGetCount()
    for gpu in snap.physical:
        assert gpu.error is None, gpu
        assert gpu.uuid.startswith("GPU-") and gpu.name
        assert gpu.memory_total and gpu.memory_total > 0 and gpu.memory_used is not None
        assert gpu.memory_used <= gpu.memory_total
        assert gpu.temperature is None or 0 < gpu.temperature < 120
        assert gpu.power is None or gpu.power >= 0
    for row in snap.gpus:
        if row.is_mig:
            assert row.parent is not None and row.uuid.startswith("MIG-")


def test_matches_nvidia_smi(sampler: GpuSampler) -> None:
    if not shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi not installed")
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    smi = {int(i): (u.strip(), int(t)) for i, u, t in (line.split(",") for line in out.strip().splitlines())}
    ours = {g.index: (g.uuid, (g.memory_total or 0) // (1024 * 1024)) for g in sampler.sample().physical}
    assert ours.keys() == smi.keys()
    for index, (uuid, total_mib) in smi.items():
        assert ours[index][0] == uuid
        assert abs(ours[index][1] - total_mib) <= 1


def test_history_and_inventory(sampler: GpuSampler) -> None:
    first = sampler.sample()
    second = sampler.sample()
    uuid = first.physical[0].uuid
    assert len(sampler.history(uuid)) >= 2
    inv = inventory_of(second)
    assert inv.available and [g.index for g in inv.gpus] == [g.index for g in second.physical]
    assert allocate("auto", {}, inv)[0] in {g.index for g in second.physical}


def test_sampling_is_cheap(sampler: GpuSampler) -> None:
    sampler.sample()  # warm: first per-process utilisation call reads the whole driver buffer
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        sampler.sample()
    per_gpu = (time.perf_counter() - start) / runs / max(1, len(sampler.sample().physical))
    assert per_gpu < 0.05, f"{per_gpu * 1000:.1f} ms per GPU"  # target 5 ms: bench/gpu_sample.py reports it


def test_own_cuda_allocation_is_seen_as_a_host_process(sampler: GpuSampler) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    size = 256 * 1024 * 1024
    block = torch.empty(size, dtype=torch.uint8, device="cuda:0")
    torch.cuda.synchronize()
    try:
        deadline = time.monotonic() + 10
        while True:  # the driver lists a new context within a sample or two
            snap = attribute(sampler.sample(), None, "default")
            pids = {p.pid: p for g in snap.physical for p in g.processes}
            if os.getpid() in pids or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if os.getpid() not in pids:
            if pids and not any(os.path.exists(f"/proc/{pid}") for pid in pids):
                pytest.skip("NVML reports host PIDs from another PID namespace (running in a container)")
            pytest.fail(f"our PID {os.getpid()} is not among the GPU processes {sorted(pids)}")
        mine = pids[os.getpid()]
        assert mine.container is None and mine.owner == getpass.getuser()
        if mine.used_memory is not None:  # None where the driver hides per-process memory
            assert mine.used_memory >= size
    finally:
        del block
        torch.cuda.empty_cache()
