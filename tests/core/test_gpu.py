"""GPU sampling without a GPU: NVML is replaced only at the pynvml function boundary.

Each scenario asserts what the snapshot says AND what `ptdesk gpus` prints (table and --json).
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pynvml
import pytest
from click.testing import CliRunner

from ptdesk.cli import main
from ptdesk.core.gpu.nvml import GpuSampler, inventory_of
from tests.support.nvml_scenarios import GiB, Scenario, healthy, mig, mismatch, no_driver, not_supported, one_lost

ME = getpass.getuser()
HIDDEN_PID = 999_999_1  # in the healthy scenario on GPU 1: a PID we cannot see in /proc


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch):
    """Install a scenario's replacement functions on pynvml."""

    def install(scenario: Scenario) -> Scenario:
        for name, fn in scenario.functions().items():
            monkeypatch.setattr(pynvml, name, fn)
        return scenario

    return install


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["gpus", *args], env={"PTDESK_HOME": str(tmp_path / "home")},
                                catch_exceptions=False)
    return result.exit_code, result.output


# --- healthy -----------------------------------------------------------------------------------
def test_healthy_snapshot_reads_every_metric(use) -> None:
    use(healthy())
    snap = GpuSampler().sample()
    assert snap.available and snap.reason is None and snap.driver == "580.82.07"
    assert [g.index for g in snap.gpus] == [0, 1]
    gpu0 = snap.gpus[0]
    assert (gpu0.name, gpu0.utilization, gpu0.memory_utilization) == ("NVIDIA H100 80GB HBM3", 37, 20)
    assert (gpu0.memory_used, gpu0.memory_total) == (10 * GiB, 80 * GiB)
    assert (gpu0.temperature, gpu0.power, gpu0.power_limit) == (45, 120.0, 700.0)
    assert (gpu0.clock_sm, gpu0.clock_mem, gpu0.fan, gpu0.mig_mode, gpu0.error) == (1980, 2619, None, None, None)
    # The PID is in both the compute and the graphics list: listed once, compute's memory kept.
    assert len(gpu0.processes) == 1
    proc = gpu0.processes[0]
    assert (proc.pid, proc.used_memory, proc.kind, proc.sm_utilization) == (os.getpid(), GiB, "compute", 30)
    assert snap.gpus[1].processes[0].used_memory is None  # the driver did not say


def test_nvml_is_initialised_once_even_from_many_threads(use) -> None:
    scenario = use(healthy())
    sampler = GpuSampler()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(5):
            assert sampler.sample().available

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scenario.calls["nvmlInit"] == 1
    assert scenario.calls["nvmlDeviceGetCount"] == 40
    sampler.close()
    assert scenario.calls["nvmlShutdown"] == 1


def test_history_is_bounded_per_gpu(use) -> None:
    scenario = use(healthy())
    sampler = GpuSampler(history=5)
    assert GpuSampler().history("GPU-unknown") == ()
    for util in (10, 20, 30, 40, 50, 60, 70):
        scenario.gpus[0].util = util
        sampler.sample()
    uuid = scenario.gpus[0].uuid
    assert sampler.history(uuid) == (30.0, 40.0, 50.0, 60.0, 70.0)
    assert sampler.history(uuid, "memory") == (12.5,) * 5  # 10 of 80 GiB
    default = GpuSampler()
    for _ in range(301):
        default.sample()
    assert len(default.history(uuid)) == 300  # 5 min at 1 Hz by default


def test_per_process_utilisation_not_found_keeps_last_values(use) -> None:
    scenario = use(healthy())
    sampler = GpuSampler()
    assert sampler.sample().gpus[0].processes[0].sm_utilization == 30
    scenario.proc_util_not_found = True  # NotFound = "no new samples since your timestamp"
    assert sampler.sample().gpus[0].processes[0].sm_utilization == 30


def test_healthy_cli_table_and_json(use, tmp_path: Path) -> None:
    use(healthy())
    code, out = cli(tmp_path)
    assert code == 0
    assert "NVIDIA driver 580.82.07, 2 GPUs" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("GPU"))
    gpu0, proc, gpu1, hidden = lines[header + 1: header + 5]
    assert gpu0.startswith("0 ") and "37%" in gpu0 and "10.0 GiB / 80.0 GiB" in gpu0 and "120 / 700 W" in gpu0
    # The process row sits under its GPU, with the person and "host process".
    assert str(os.getpid()) in proc and ME in proc and "host process" in proc and "1.0 GiB" in proc
    assert gpu1.startswith("1 ")
    assert str(HIDDEN_PID) in hidden and "N/A" in hidden

    code, out = cli(tmp_path, "--json")
    assert code == 0
    data = json.loads(out)
    assert {"available", "reason", "driver", "gpus"} <= set(data)
    assert (data["available"], data["reason"], data["driver"]) == (True, None, "580.82.07")
    required = {"index", "uuid", "name", "utilization", "memory_used", "memory_total", "temperature", "power",
                "processes"}
    assert all(required <= set(g) for g in data["gpus"])
    g0 = data["gpus"][0]
    assert (g0["index"], g0["utilization"], g0["memory_used"], g0["power"]) == (0, 37, 10 * GiB, 120.0)
    assert g0["processes"] == [{"pid": os.getpid(), "used_memory": GiB, "container": None, "experiment": None,
                                "owner": ME, "kind": "compute", "sm_utilization": 30, "host_user": ME,
                                "person": ME}]
    assert data["gpus"][1]["processes"][0]["owner"] is None


def test_cli_works_with_the_engine_unreachable(use, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(healthy())
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code, out = cli(tmp_path, "--json")
    assert code == 0 and json.loads(out)["gpus"][0]["processes"][0]["owner"] == ME


# --- failures as values ------------------------------------------------------------------------
def test_lost_gpus_are_rows_with_an_error(use, tmp_path: Path) -> None:
    scenario = use(one_lost())
    sampler = GpuSampler()
    snap = sampler.sample()
    assert snap.available
    assert [(g.index, g.error) for g in snap.gpus] == [(0, None), (1, "lost"), (2, "lost")]
    assert snap.gpus[2].uuid == scenario.gpus[2].uuid  # read before it was lost: the history survives
    assert snap.gpus[1].temperature is None and snap.gpus[1].processes == ()
    assert sampler.history(scenario.gpus[2].uuid) == (None,)

    code, out = cli(tmp_path)
    assert code == 0
    assert "ERR!" in out and "GPU 1: the driver lost this GPU" in out and "GPU 2: the driver lost" in out
    data = json.loads(cli(tmp_path, "--json")[1])
    assert [g["error"] for g in data["gpus"]] == [None, "lost", "lost"]


def test_gpu_lost_after_it_was_seen_keeps_its_uuid(use) -> None:
    scenario = use(healthy())
    sampler = GpuSampler()
    sampler.sample()
    scenario.handle_errors[1] = pynvml.NVML_ERROR_GPU_IS_LOST
    lost = sampler.sample().gpus[1]
    assert (lost.uuid, lost.name, lost.error) == (scenario.gpus[1].uuid, "NVIDIA H100 80GB HBM3", "lost")
    assert sampler.history(lost.uuid) == (5.0, None)


def test_no_permission_on_one_gpu(use) -> None:
    scenario = use(healthy())
    scenario.handle_errors[1] = pynvml.NVML_ERROR_NO_PERMISSION
    assert [g.error for g in GpuSampler().sample().gpus] == [None, "no permission"]


def test_mig_instances_are_rows_of_their_own(use, tmp_path: Path) -> None:
    use(mig())
    snap = GpuSampler().sample()
    assert [(g.label, g.parent, g.mig_index) for g in snap.gpus] == [
        ("0", None, None), ("0:0", 0, 0), ("0:2", 0, 2), ("1", None, None)]
    parent, inst0, inst2, plain = snap.gpus
    assert parent.mig_mode is True and parent.utilization is None  # NotSupported on MIG: None, not a crash
    assert plain.mig_mode is None and plain.utilization == 12
    assert (inst0.memory_used, inst0.memory_total) == (GiB, 20 * GiB)
    assert [p.pid for p in inst0.processes] == [os.getpid()]
    assert inst0.processes[0].sm_utilization is None  # per-process util does not exist on MIG
    assert {p.pid for p in parent.processes} == {os.getpid(), 999_999_2}
    assert [g.index for g in inventory_of(snap).gpus] == [0, 1]  # the ledger sees physical GPUs only

    code, out = cli(tmp_path)
    assert code == 0 and "[MIG]" in out
    lines = out.splitlines()
    row00 = next(i for i, line in enumerate(lines) if line.startswith("0:0 "))
    assert str(os.getpid()) in lines[row00 + 1] and ME in lines[row00 + 1]
    assert sum(str(os.getpid()) in line for line in lines) == 1  # not repeated under the parent
    data = json.loads(cli(tmp_path, "--json")[1])
    assert [g["index"] for g in data["gpus"]] == [0, 1]
    assert [m["uuid"] for m in data["gpus"][0]["mig_instances"]] == [inst0.uuid, inst2.uuid]
    assert data["gpus"][0]["mig_instances"][0]["parent"] == 0
    assert "mig_instances" not in data["gpus"][1]


def test_not_supported_metrics_are_none(use, tmp_path: Path) -> None:
    scenario = use(not_supported())
    sampler = GpuSampler()
    for _ in range(2):
        gpu = sampler.sample().gpus[0]
        assert (gpu.power, gpu.power_limit, gpu.temperature, gpu.clock_sm, gpu.fan) == (None,) * 5
        assert (gpu.memory_used, gpu.memory_total) == (10 * GiB, 80 * GiB)  # through the v1 fallback
        assert gpu.processes[0].pid == os.getpid() and gpu.processes[0].sm_utilization is None
    # v2 was tried once, then the sampler remembered the driver lacks it.
    assert scenario.calls["nvmlDeviceGetMemoryInfo"] == 3
    code, out = cli(tmp_path)
    row = next(line for line in out.splitlines() if line.startswith("0 "))
    assert code == 0 and row.count("N/A") == 2  # temperature and power


@pytest.mark.parametrize(("scenario", "words"), [
    (no_driver(), "not loaded"),
    (no_driver(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), "No NVIDIA driver is installed"),
    (no_driver(pynvml.NVML_ERROR_NO_PERMISSION), "permissions"),
    (mismatch(), "different versions"),
], ids=["driver-not-loaded", "library-not-found", "no-permission", "lib-rm-mismatch"])
def test_no_usable_driver_is_a_calm_sentence(use, tmp_path: Path, scenario: Scenario, words: str) -> None:
    use(scenario)
    snap = GpuSampler().sample()
    assert not snap.available and snap.gpus == () and words in (snap.reason or "")
    assert snap.reason and snap.reason.endswith(".") and "\n" not in snap.reason
    inv = inventory_of(snap)
    assert not inv.available and inv.reason == snap.reason

    code, out = cli(tmp_path)
    assert code == 0 and out.strip() == f"No GPU information: {snap.reason}"
    code, out = cli(tmp_path, "--json")
    assert code == 0
    assert json.loads(out) == {"available": False, "reason": snap.reason, "driver": None, "gpus": [],
                               "workstation": "local"}


def test_failed_init_is_retried_only_after_a_while(use) -> None:
    scenario = use(no_driver())
    clock = FakeClock()
    sampler = GpuSampler(retry_after=30, clock=clock)
    sampler.sample()
    sampler.sample()
    assert scenario.calls["nvmlInit"] == 1  # each init can cost ~1.5 s: not every tick
    scenario.init_error = None
    scenario.gpus = healthy().gpus
    clock.now += 31
    assert sampler.sample().available and scenario.calls["nvmlInit"] == 2


def test_nvml_vanishing_mid_session_recovers(use, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = use(healthy())
    clock = FakeClock()
    sampler = GpuSampler(retry_after=5, clock=clock)
    assert sampler.sample().available

    def gone() -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", gone)
    snap = sampler.sample()
    assert not snap.available and "not loaded" in (snap.reason or "")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", scenario.functions()["nvmlDeviceGetCount"])
    clock.now += 6
    assert sampler.sample().available and scenario.calls["nvmlInit"] == 2


def test_a_binding_surprise_never_raises(use, monkeypatch: pytest.MonkeyPatch) -> None:
    use(healthy())

    def broken(handle: object) -> object:
        raise TypeError("unexpected struct")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetUUID", broken)
    snap = GpuSampler().sample()
    assert not snap.available and "unexpectedly" in (snap.reason or "")


def test_inventory_for_the_ledger(use) -> None:
    use(one_lost())
    inv = GpuSampler().inventory()
    assert inv.available
    assert [(g.index, g.utilization, g.memory_used, g.error) for g in inv.gpus] == [
        (0, 0.37, 0.125, None), (1, None, None, "lost"), (2, None, None, "lost")]


def test_watch_refreshes_until_ctrl_c(tmp_path: Path) -> None:
    """The real binary, real NVML (absent here, present on a GPU machine): JSON lines until SIGINT."""
    proc = subprocess.Popen([sys.executable, "-m", "ptdesk.cli", "gpus", "--watch", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PTDESK_HOME": str(tmp_path)})
    try:
        assert proc.stdout is not None
        first, second = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
        assert first["available"] == second["available"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gpu_core_needs_neither_docker_nor_textual() -> None:
    """The GPU check machine has no engine; the dashboard is not part of the core."""
    code = ("import sys; import ptdesk.core.gpu.nvml, ptdesk.core.gpu.procmap, ptdesk.core.gpu.ledger; "
            "bad = {'docker', 'textual'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_doctor_reports_nvml_in_the_samplers_words(use) -> None:
    """`ptdesk doctor` says what the GPU panel would say: the driver and GPU count, or why not."""
    from ptdesk.core.admin.doctor import check_nvml

    use(healthy(gpus=3))
    check = check_nvml()
    assert check.status == "ok" and check.detail.endswith(", 3 GPU(s)") and "driver " in check.detail
    use(mismatch())
    check = check_nvml()
    assert check.status == "warn" and "different versions" in check.detail
