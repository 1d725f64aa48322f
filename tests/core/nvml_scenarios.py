"""NVML scenarios for machines without a GPU.

The only fake in ptdesk's tests: the pynvml *functions* are replaced by these, which raise the real
pynvml exception classes (pynvml.NVMLError(pynvml.NVML_ERROR_...)). Everything above the pynvml
boundary (ptdesk.core.gpu, procmap, the CLI) runs for real. bench/gpu_sample.py uses them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

GiB = 1024**3
MiB = 1024**2


def err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@dataclass
class FakeProc:
    pid: int
    used: int | None  # bytes; None like WDDM / unprivileged reads
    sm: int | None = None  # per-process SM% sample, None = no sample


@dataclass
class FakeGpu:
    uuid: str
    name: str
    util: int = 0
    mem_util: int = 0
    used: int = 0
    total: int = 80 * GiB
    temp: int = 40
    power_mw: int = 100_000
    limit_mw: int = 700_000
    fan: int | None = None  # None: NotSupported (datacenter cards have no fan reading)
    clock_sm: int = 1980
    clock_mem: int = 2619
    compute: list[FakeProc] = field(default_factory=list)
    graphics: list[FakeProc] = field(default_factory=list)
    mig: list[FakeGpu | None] | None = None  # None: not MIG-capable; list: enabled, None = empty slot
    # function name -> NVML error code raised by that function for this device
    fails: dict[str, int] = field(default_factory=dict)
    is_mig_instance: bool = False


@dataclass
class Scenario:
    name: str
    gpus: list[FakeGpu] = field(default_factory=list)
    driver: str = "580.82.07"
    init_error: int | None = None  # NVML error code nvmlInit raises
    handle_errors: dict[int, int] = field(default_factory=dict)  # index -> code of GetHandleByIndex
    memory_v2: bool = True  # False: an old driver without nvmlDeviceGetMemoryInfo_v2
    proc_util_not_found: bool = False  # nvmlDeviceGetProcessUtilization: "no new samples"
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def functions(self) -> dict[str, Callable[..., Any]]:
        """pynvml function name -> replacement, for monkeypatch.setattr(pynvml, name, fn)."""
        s = self

        def device_call(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def call(handle: FakeGpu, *args: Any, **kwargs: Any) -> Any:
                s._count(name)
                if name in handle.fails:
                    raise err(handle.fails[name])
                return fn(handle, *args, **kwargs)
            return call

        def init() -> None:
            s._count("nvmlInit")
            if s.init_error is not None:
                raise err(s.init_error)

        def handle_by_index(index: int) -> FakeGpu:
            s._count("nvmlDeviceGetHandleByIndex")
            if index in s.handle_errors:
                raise err(s.handle_errors[index])
            if index >= len(s.gpus):
                raise err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return s.gpus[index]

        def memory(h: FakeGpu, version: int | None = None) -> Any:
            if version and not s.memory_v2:
                raise err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            info = SimpleNamespace(total=h.total, used=h.used, free=h.total - h.used)
            if version:
                info.reserved = 512 * MiB
            return info

        def utilization(h: FakeGpu) -> Any:
            if h.is_mig_instance or h.mig is not None:
                raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)  # what real MIG-enabled GPUs answer
            return SimpleNamespace(gpu=h.util, memory=h.mem_util)

        def fan(h: FakeGpu) -> int:
            if h.fan is None:
                raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return h.fan

        def mig_mode(h: FakeGpu) -> list[int]:
            if h.mig is None:
                raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]

        def max_mig(h: FakeGpu) -> int:
            if h.mig is None:
                raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return len(h.mig)

        def mig_handle(h: FakeGpu, index: int) -> FakeGpu:
            assert h.mig is not None
            child = h.mig[index]
            if child is None:
                raise err(pynvml.NVML_ERROR_NOT_FOUND)
            return child

        def procs(kind: str) -> Callable[[FakeGpu], list[Any]]:
            def listing(h: FakeGpu) -> list[Any]:
                return [SimpleNamespace(pid=p.pid, usedGpuMemory=p.used, gpuInstanceId=0, computeInstanceId=0)
                        for p in getattr(h, kind)]
            return listing

        def process_util(h: FakeGpu, since: int) -> list[Any]:
            if h.is_mig_instance:
                raise err(pynvml.NVML_ERROR_NOT_SUPPORTED)
            samples = [SimpleNamespace(pid=p.pid, timeStamp=since + 1000, smUtil=p.sm, memUtil=0, encUtil=0,
                                       decUtil=0) for p in h.compute if p.sm is not None]
            if s.proc_util_not_found or not samples:
                raise err(pynvml.NVML_ERROR_NOT_FOUND)
            return samples

        def count() -> int:
            s._count("nvmlDeviceGetCount")
            return len(s.gpus)

        plain = {
            "nvmlDeviceGetUUID": lambda h: h.uuid,
            "nvmlDeviceGetName": lambda h: h.name,
            "nvmlDeviceGetUtilizationRates": utilization,
            "nvmlDeviceGetMemoryInfo": memory,
            "nvmlDeviceGetTemperature": lambda h, sensor: h.temp,
            "nvmlDeviceGetPowerUsage": lambda h: h.power_mw,
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: h.limit_mw,
            "nvmlDeviceGetFanSpeed": fan,
            "nvmlDeviceGetClockInfo": lambda h, kind: h.clock_sm if kind == pynvml.NVML_CLOCK_SM else h.clock_mem,
            "nvmlDeviceGetMigMode": mig_mode,
            "nvmlDeviceGetMaxMigDeviceCount": max_mig,
            "nvmlDeviceGetMigDeviceHandleByIndex": mig_handle,
            "nvmlDeviceGetComputeRunningProcesses": procs("compute"),
            "nvmlDeviceGetGraphicsRunningProcesses": procs("graphics"),
            "nvmlDeviceGetProcessUtilization": process_util,
        }
        functions: dict[str, Callable[..., Any]] = {name: device_call(name, fn) for name, fn in plain.items()}
        functions.update({
            "nvmlInit": init,
            "nvmlShutdown": lambda: s._count("nvmlShutdown"),
            "nvmlSystemGetDriverVersion": lambda: s.driver,
            "nvmlDeviceGetCount": count,
            "nvmlDeviceGetHandleByIndex": handle_by_index,
        })
        return functions


@contextmanager
def installed(scenario: Scenario) -> Iterator[Scenario]:
    """Install a scenario outside pytest (the benchmark); restores pynvml afterwards."""
    saved = {name: getattr(pynvml, name) for name in scenario.functions()}
    try:
        for name, fn in scenario.functions().items():
            setattr(pynvml, name, fn)
        yield scenario
    finally:
        for name, fn in saved.items():
            setattr(pynvml, name, fn)


# --- the scenarios ---------------------------------------------------------------------------
def healthy(pids: tuple[int, ...] = (), gpus: int = 2) -> Scenario:
    """Several GPUs; GPU 0 runs the given PIDs (real host PIDs, so attribution is real)."""
    pids = pids or (os.getpid(),)
    devices = []
    for i in range(gpus):
        devices.append(FakeGpu(uuid=f"GPU-{i:08d}-aaaa-bbbb-cccc-000000000000", name="NVIDIA H100 80GB HBM3",
                               util=[37, 5, 90, 60][i % 4], mem_util=20, used=[10, 2, 70, 40][i % 4] * GiB,
                               temp=45 + i, power_mw=120_000 + i * 1000))
    devices[0].compute = [FakeProc(pid, (i + 1) * GiB, sm=30 + i) for i, pid in enumerate(pids)]
    # The same PID in both lists (a CUDA + OpenGL app) must be listed once.
    devices[0].graphics = [FakeProc(pids[0], None)]
    if gpus > 1:
        devices[1].compute = [FakeProc(999_999_1, None)]  # a PID that is not visible to us
    return Scenario("healthy", devices)


def one_lost() -> Scenario:
    """Three GPUs: 1 has fallen off the bus (handle), 2 is lost mid-read (a metric)."""
    s = healthy(gpus=3)
    s.handle_errors[1] = pynvml.NVML_ERROR_GPU_IS_LOST
    s.gpus[2].fails["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_GPU_IS_LOST
    return s


def mig() -> Scenario:
    """GPU 0 in MIG mode with two instances (and an empty slot); GPU 1 a plain GPU."""
    inst = [FakeGpu(uuid=f"MIG-{i}-0000-1111-2222-333333333333", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb",
                    used=(i + 1) * GiB, total=20 * GiB, is_mig_instance=True,
                    compute=[FakeProc(os.getpid() if i == 0 else 999_999_2, 512 * MiB)])
            for i in range(2)]
    parent = FakeGpu(uuid="GPU-mig-parent", name="NVIDIA A100-SXM4-40GB", used=3 * GiB, total=40 * GiB,
                     mig=[inst[0], None, inst[1]])
    plain = FakeGpu(uuid="GPU-plain", name="NVIDIA A100-SXM4-40GB", util=12, used=GiB, total=40 * GiB)
    return Scenario("mig", [parent, plain])


def not_supported() -> Scenario:
    """A consumer/older card: no power, no temperature, no fan, no per-process util, old memory API."""
    s = healthy(gpus=1)
    gpu = s.gpus[0]
    for fn in ("nvmlDeviceGetPowerUsage", "nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetTemperature",
               "nvmlDeviceGetClockInfo", "nvmlDeviceGetProcessUtilization"):
        gpu.fails[fn] = pynvml.NVML_ERROR_NOT_SUPPORTED
    gpu.fails["nvmlDeviceGetGraphicsRunningProcesses"] = pynvml.NVML_ERROR_NO_PERMISSION
    s.memory_v2 = False
    return s


def no_driver(code: int = pynvml.NVML_ERROR_DRIVER_NOT_LOADED) -> Scenario:
    return Scenario("no driver", init_error=code)


def old_driver(driver: str = "470.57.02") -> Scenario:
    """Healthy GPUs on a driver too old for CUDA 12 (what an image built for CUDA 12.8 needs: 570.26)."""
    s = healthy()
    s.name, s.driver = "old driver", driver
    return s


def mismatch() -> Scenario:
    return Scenario("driver/library mismatch", init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)


def idle(gpus: int = 4) -> Scenario:
    """A box of `gpus` H100s with nothing running on them (what the GPU-sharing tests start from;
    a test puts processes or load on a GPU by editing `scenario.gpus[i]`)."""
    devices = [FakeGpu(uuid=f"GPU-{i:08d}-dddd-eeee-ffff-000000000000", name="NVIDIA H100 80GB HBM3",
                       util=0, mem_util=0, used=0, temp=35 + i) for i in range(gpus)]
    return Scenario("idle", devices)


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "healthy": healthy, "one_lost": one_lost, "mig": mig, "not_supported": not_supported,
    "no_driver": no_driver, "mismatch": mismatch, "old_driver": old_driver, "idle": idle,
}
