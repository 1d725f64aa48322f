"""NVML sampling (nvidia-ml-py): what every GPU is doing, as an immutable snapshot.

Failures are values, never exceptions: a machine without a driver gives a snapshot with
available=False and one calm sentence; a lost GPU is a row with error="lost"; a metric the card
does not support is None. `sample()` never raises, so a poller can call it blindly.

NVML functions are looked up on the `pynvml` module at call time (never imported by name), so the
tests can replace them at that boundary with scenario fixtures.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, TypeVar

import pynvml

from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad, GpuProcess, GpuSample, GpuSnapshot

HISTORY_SAMPLES = 300  # 5 minutes at 1 Hz, what a sparkline shows
T = TypeVar("T")

# Errors that mean "this metric is not there", not "something is wrong".
_ABSENT = (
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    pynvml.NVML_ERROR_NOT_FOUND,
    pynvml.NVML_ERROR_NO_DATA,
    pynvml.NVML_ERROR_INVALID_ARGUMENT,
    pynvml.NVML_ERROR_NO_PERMISSION,  # a single metric hidden from us: show N/A, keep the rest
    pynvml.NVML_ERROR_UNKNOWN,
    pynvml.NVML_ERROR_TIMEOUT,
)
# Errors after which nothing more can be read from this GPU in this sample.
_LOST = (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED)
# Errors that mean NVML itself went away (driver unloaded/upgraded under us): start over later.
_GONE = (pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
         pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)


class _GpuLost(Exception):
    """Internal: the GPU stopped answering in the middle of a sample."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _NvmlGone(Exception):
    """Internal: NVML as a whole stopped answering; the snapshot becomes unavailable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reason_for(exc: BaseException) -> str:
    """One calm sentence for a person: why there is no GPU information."""
    value = getattr(exc, "value", None)
    if value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return "No NVIDIA driver is installed on this machine (libnvidia-ml.so.1 was not found)."
    if value == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "The NVIDIA driver is installed but not loaded; check that the GPU is present (nvidia-smi)."
    if value == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return ("The NVIDIA driver library and the loaded kernel module are different versions; "
                "reboot (or reload the nvidia module) to finish the driver update.")
    if value == pynvml.NVML_ERROR_NO_PERMISSION:
        return "NVML refused access to the GPUs; check the permissions on /dev/nvidia*."
    if value == pynvml.NVML_ERROR_UNINITIALIZED:
        return "NVML stopped answering (was the driver reloaded?); ptdesk will try again."
    if isinstance(exc, pynvml.NVMLLibraryMismatchError):
        return "The NVIDIA driver is too old for this nvidia-ml-py; update the driver or pin an older nvidia-ml-py."
    return f"NVML could not be used ({exc})."


def _text(value: Any) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class GpuSampler:
    """Owns the NVML session for its lifetime and turns each call into a GpuSnapshot.

    Thread-safe: NVML is initialised once, lazily, under a lock, and samples are taken one at a
    time so the per-GPU history and process-utilisation timestamps stay consistent.
    """

    def __init__(self, history: int = HISTORY_SAMPLES, retry_after: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._initialised = False
        self._failure: str | None = None
        self._failed_at = 0.0
        self._retry_after = retry_after  # a failed init (~1.5 s each) is retried at most this often
        self._clock = clock
        self._driver: str | None = None
        self._history_len = history
        # Separate from the sampling lock: a UI thread reading a sparkline must not wait for NVML.
        self._history_lock = threading.Lock()
        self._util: dict[str, deque[float | None]] = {}
        self._mem: dict[str, deque[float | None]] = {}
        self._uuids: dict[int, str] = {}  # index -> last known uuid, to keep a lost GPU's history
        self._names: dict[int, str] = {}
        self._memory_v2: bool | None = None  # learned once: does the driver know nvmlMemory_v2?
        self._proc_seen: dict[str, int] = {}  # uuid -> last process-utilisation timestamp (µs)
        self._proc_util: dict[str, dict[int, int]] = {}  # uuid -> pid -> last SM%
        self.last: GpuSnapshot | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def _ensure_init(self) -> str | None:
        """Initialise NVML once; return the reason it is unavailable, or None."""
        if self._initialised:
            return None
        if self._failure and self._clock() - self._failed_at < self._retry_after:
            return self._failure
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError or OSError from a broken library: both are values here
            self._failure, self._failed_at = reason_for(exc), self._clock()
            return self._failure
        self._initialised, self._failure = True, None
        try:
            self._driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError:
            self._driver = None
        return None

    def _drop(self, reason: str) -> None:
        """NVML went away under us: forget the session so the next sample starts over."""
        with contextlib.suppress(Exception):  # shutting down a session that is already gone
            pynvml.nvmlShutdown()
        self._initialised, self._failure, self._failed_at = False, reason, self._clock()
        self._memory_v2 = None

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlShutdown()
                self._initialised = False

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sampling ----------------------------------------------------------------------------
    def sample(self) -> GpuSnapshot:
        """Read every GPU now. Never raises."""
        with self._lock:
            now = self._clock()
            try:
                snapshot = self._sample(now)
            except _NvmlGone as gone:
                self._drop(gone.reason)
                snapshot = GpuSnapshot(False, gone.reason, self._driver, (), now)
            except Exception as exc:  # a bug or a binding surprise must not take the dashboard down
                snapshot = GpuSnapshot(False, f"Reading the GPUs failed unexpectedly ({exc!r}).",
                                       self._driver, (), now)
            self._record(snapshot)
            self.last = snapshot
            return snapshot

    def _sample(self, now: float) -> GpuSnapshot:
        reason = self._ensure_init()
        if reason:
            return GpuSnapshot(False, reason, None, (), now)
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise _NvmlGone(reason_for(exc)) from None
        # Read each time, not only at init: a driver changed under running experiments is an event.
        with contextlib.suppress(pynvml.NVMLError):
            self._driver = _text(pynvml.nvmlSystemGetDriverVersion())
        rows: list[GpuSample] = []
        for index in range(count):
            rows.extend(self._device(index))
        return GpuSnapshot(True, None, self._driver, tuple(rows), now)

    def _device(self, index: int) -> list[GpuSample]:
        """The rows for one physical GPU: itself, then its MIG instances."""
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            return [self._broken(index, exc)]
        try:
            uuid = _text(self._call(pynvml.nvmlDeviceGetUUID, handle) or f"GPU-index-{index}")
            name = _text(self._call(pynvml.nvmlDeviceGetName, handle) or "NVIDIA GPU")
            self._uuids[index], self._names[index] = uuid, name
            mig = self._mig_mode(handle)
            instances = self._mig_instances(handle, index) if mig else []
            util = self._call(pynvml.nvmlDeviceGetUtilizationRates, handle)
            total, used = self._memory(handle)
            temperature = self._call(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
            power = self._call(pynvml.nvmlDeviceGetPowerUsage, handle)
            limit = self._call(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            if instances:
                # The instances hold the processes; the physical row lists their union so a PID
                # search over physical GPUs still finds everything.
                processes = _union(p for inst in instances for p in inst.processes)
            else:
                processes = self._processes(handle, uuid, per_process_util=not mig)
            gpu = GpuSample(
                index=index, uuid=uuid, name=name,
                utilization=util.gpu if util is not None else None,
                memory_utilization=util.memory if util is not None else None,
                memory_used=used, memory_total=total,
                temperature=temperature,
                power=power / 1000.0 if power is not None else None,
                power_limit=limit / 1000.0 if limit is not None else None,
                fan=self._call(pynvml.nvmlDeviceGetFanSpeed, handle),
                clock_sm=self._call(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
                clock_mem=self._call(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
                mig_mode=mig,
                processes=processes,
            )
        except _GpuLost as lost:
            return [self._broken(index, error=lost.error)]
        return [gpu, *instances]

    def _broken(self, index: int, exc: BaseException | None = None, error: str | None = None) -> GpuSample:
        """A GPU that is listed but cannot be read; keeps its last known uuid for the history."""
        if error is None:
            value = getattr(exc, "value", None)
            if value in _GONE:
                raise _NvmlGone(reason_for(exc))  # type: ignore[arg-type]
            error = ("lost" if value in _LOST else "no permission" if value == pynvml.NVML_ERROR_NO_PERMISSION
                     else f"unreadable ({exc})")
        return GpuSample(index=index, uuid=self._uuids.get(index, f"GPU-index-{index}"),
                         name=self._names.get(index, "NVIDIA GPU"), error=error)

    def _call(self, fn: Callable[..., T], *args: Any) -> T | None:
        """One NVML read: absent metrics become None, a lost GPU or a vanished NVML propagates."""
        try:
            return fn(*args)
        except pynvml.NVMLLibraryMismatchError:
            return None  # an unversioned binding the driver does not have: the metric is absent
        except pynvml.NVMLError as exc:
            if exc.value in _LOST:
                raise _GpuLost("lost") from None
            if exc.value in _GONE:
                raise _NvmlGone(reason_for(exc)) from None
            return None

    def _memory(self, handle: Any) -> tuple[int | None, int | None]:
        """(total, used) bytes. v2 excludes driver-reserved memory from "used", as nvidia-smi does."""
        info = None
        v2 = getattr(pynvml, "nvmlMemory_v2", None)
        if v2 is not None and self._memory_v2 is not False:
            info = self._call(pynvml.nvmlDeviceGetMemoryInfo, handle, v2)
            if self._memory_v2 is None:
                self._memory_v2 = info is not None  # an old driver: stop asking for v2
        if info is None:
            info = self._call(pynvml.nvmlDeviceGetMemoryInfo, handle)
        if info is None:
            return None, None
        return int(info.total), int(info.used)

    def _mig_mode(self, handle: Any) -> bool | None:
        mode = self._call(pynvml.nvmlDeviceGetMigMode, handle)
        if mode is None:
            return None  # not a MIG-capable GPU
        return mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE

    def _mig_instances(self, handle: Any, parent: int) -> list[GpuSample]:
        count = self._call(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        rows = []
        for slot in range(count):
            mig = self._call(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig is None:
                continue  # an empty slot: no instance created there
            uuid = _text(self._call(pynvml.nvmlDeviceGetUUID, mig) or f"MIG-{parent}-{slot}")
            total, used = self._memory(mig)
            util = self._call(pynvml.nvmlDeviceGetUtilizationRates, mig)  # NotSupported on MIG today
            rows.append(GpuSample(
                index=parent, uuid=uuid, name=_text(self._call(pynvml.nvmlDeviceGetName, mig) or "MIG"),
                utilization=util.gpu if util is not None else None,
                memory_utilization=util.memory if util is not None else None,
                memory_used=used, memory_total=total, parent=parent, mig_index=slot,
                # Per-process utilisation is not supported on MIG instances.
                processes=self._processes(mig, uuid, per_process_util=False),
            ))
        return rows

    def _processes(self, handle: Any, uuid: str, per_process_util: bool) -> tuple[GpuProcess, ...]:
        found: dict[int, GpuProcess] = {}
        for kind, fn in (("compute", pynvml.nvmlDeviceGetComputeRunningProcesses),
                         ("graphics", pynvml.nvmlDeviceGetGraphicsRunningProcesses)):
            for info in self._call(fn, handle) or ():
                pid, used = int(info.pid), info.usedGpuMemory
                used = int(used) if used is not None else None
                known = found.get(pid)
                if known is None:
                    found[pid] = GpuProcess(pid=pid, used_memory=used, kind=kind)  # type: ignore[arg-type]
                elif known.used_memory is None and used is not None:
                    found[pid] = replace(known, used_memory=used)
        if per_process_util and found:
            util = self._sm_utilization(handle, uuid)
            found = {pid: replace(p, sm_utilization=util.get(pid)) for pid, p in found.items()}
        return tuple(sorted(found.values(), key=lambda p: p.pid))

    def _sm_utilization(self, handle: Any, uuid: str) -> dict[int, int]:
        """pid -> SM% from samples newer than the last ones we saw.

        NotFound means "no new samples since that timestamp": keep the previous values rather
        than flicker to N/A between two driver sampling periods.
        """
        try:
            samples = pynvml.nvmlDeviceGetProcessUtilization(handle, self._proc_seen.get(uuid, 0))
        except pynvml.NVMLError as exc:
            if exc.value in _LOST:
                raise _GpuLost("lost") from None
            if exc.value == pynvml.NVML_ERROR_NOT_FOUND:
                return self._proc_util.get(uuid, {})
            return {}
        latest: dict[int, tuple[int, int]] = {}
        for s in samples:
            if s.pid not in latest or s.timeStamp >= latest[s.pid][0]:
                # Overlapping driver sample windows can exceed 100%: clamp for display.
                latest[int(s.pid)] = (int(s.timeStamp), min(int(s.smUtil), 100))
        if latest:
            self._proc_seen[uuid] = max(ts for ts, _ in latest.values())
        util = {pid: value for pid, (_, value) in latest.items()}
        self._proc_util[uuid] = util
        return util

    # --- history & ledger --------------------------------------------------------------------
    def _record(self, snapshot: GpuSnapshot) -> None:
        with self._history_lock:
            self._append(snapshot)

    def _append(self, snapshot: GpuSnapshot) -> None:
        for gpu in snapshot.gpus:
            util = self._util.setdefault(gpu.uuid, deque(maxlen=self._history_len))
            mem = self._mem.setdefault(gpu.uuid, deque(maxlen=self._history_len))
            util.append(float(gpu.utilization) if gpu.utilization is not None else None)
            fraction = gpu.memory_fraction
            mem.append(fraction * 100.0 if fraction is not None else None)

    def history(self, uuid: str, metric: Literal["utilization", "memory"] = "utilization",
                ) -> tuple[float | None, ...]:
        """Up to the last 300 values (percent, None where unread), oldest first, for sparklines."""
        with self._history_lock:
            series = (self._util if metric == "utilization" else self._mem).get(uuid)
            return tuple(series) if series else ()

    def inventory(self, snapshot: GpuSnapshot | None = None) -> GpuInventory:
        """The real device list for the ledger (a fresh sample unless one is given)."""
        return inventory_of(snapshot or self.sample())


def inventory_of(snapshot: GpuSnapshot) -> GpuInventory:
    if not snapshot.available:
        return GpuInventory(False, snapshot.reason, driver=snapshot.driver)
    loads = tuple(
        GpuLoad(index=g.index,
                utilization=g.utilization / 100.0 if g.utilization is not None else None,
                memory_used=g.memory_fraction, error=g.error,
                memory_free=g.memory_total - g.memory_used if g.memory_total and g.memory_used is not None else None,
                memory_total=g.memory_total)
        for g in snapshot.physical
    )
    return GpuInventory(True, None, loads, driver=snapshot.driver)


def _union(processes: Any) -> tuple[GpuProcess, ...]:
    seen: dict[int, GpuProcess] = {}
    for p in processes:
        seen.setdefault(p.pid, p)
    return tuple(sorted(seen.values(), key=lambda p: p.pid))
