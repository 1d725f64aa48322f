"""GPU snapshots: what NVML (or a workstation's sampler) said about each GPU, and the ledger's view of them.

Owned by ptdesk.core.gpu.nvml (sampling), ptdesk.core.gpu.procmap (attribution) and ptdesk.core.gpu.ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class GpuProcess:
    pid: int  # host PID, as NVML reports it
    used_memory: int | None  # bytes; None when the driver does not say
    sm_utilization: int | None = None  # percent; None where per-process sampling is unsupported
    kind: Literal["compute", "graphics"] = "compute"
    container: str | None = None  # container id
    experiment: str | None = None
    owner: str | None = None  # ptdesk owner, or the host user for host processes
    host_user: str | None = None
    # The person whose account runs it: in an SSH experiment of this home, a collaborator's own
    # account names them (ptdesk.core.access.accounts); otherwise the owner (or the host user).
    person: str | None = None

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "used_memory": self.used_memory,
            "container": self.container,
            "experiment": self.experiment,
            "owner": self.owner,
            "kind": self.kind,
            "sm_utilization": self.sm_utilization,
            "host_user": self.host_user,
            "person": self.person,
        }


@dataclass(frozen=True)
class GpuSample:
    index: int  # NVML device index; on MIG rows the index of the physical GPU
    uuid: str
    name: str
    utilization: int | None = None
    memory_utilization: int | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature: int | None = None
    power: float | None = None  # watts
    power_limit: float | None = None
    fan: int | None = None
    clock_sm: int | None = None
    clock_mem: int | None = None
    mig_mode: bool | None = None
    parent: int | None = None  # set on MIG instance rows: the index of the physical GPU
    mig_index: int | None = None
    error: str | None = None  # "lost", "no permission"...: the GPU is listed but cannot be read
    processes: tuple[GpuProcess, ...] = ()

    @property
    def is_mig(self) -> bool:
        return self.parent is not None

    @property
    def label(self) -> str:
        """How people name it: "0", or "0:1" for MIG instance 1 of GPU 0."""
        return f"{self.parent}:{self.mig_index}" if self.is_mig else str(self.index)

    @property
    def memory_fraction(self) -> float | None:
        if self.memory_used is None or not self.memory_total:
            return None
        return self.memory_used / self.memory_total

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "utilization": self.utilization,
            "memory_used": self.memory_used,
            "memory_total": self.memory_total,
            "temperature": self.temperature,
            "power": self.power,
            "processes": [p.to_json() for p in self.processes],
            "memory_utilization": self.memory_utilization,
            "power_limit": self.power_limit,
            "fan": self.fan,
            "clock_sm": self.clock_sm,
            "clock_mem": self.clock_mem,
            "mig_mode": self.mig_mode,
            "parent": self.parent,
            "mig_index": self.mig_index,
            "error": self.error,
        }


@dataclass(frozen=True)
class GpuSnapshot:
    """Everything NVML said at one moment. MIG instances are rows of their own (parent set),
    listed right after their physical GPU; a physical GPU in MIG mode carries the union of its
    instances' processes so a search by PID on physical GPUs finds every process."""

    available: bool
    reason: str | None  # one calm sentence when available is False
    driver: str | None
    gpus: tuple[GpuSample, ...] = field(default_factory=tuple)
    taken_at: float = 0.0

    @property
    def physical(self) -> tuple[GpuSample, ...]:
        return tuple(g for g in self.gpus if not g.is_mig)

    def instances_of(self, index: int) -> tuple[GpuSample, ...]:
        return tuple(g for g in self.gpus if g.parent == index)

    def to_json(self) -> dict:
        """The `ptdesk gpus --json` document: physical GPUs, MIG instances nested under them."""
        gpus = []
        for gpu in self.physical:
            data = gpu.to_json()
            if gpu.mig_mode:
                data["mig_instances"] = [m.to_json() for m in self.instances_of(gpu.index)]
            gpus.append(data)
        return {"available": self.available, "reason": self.reason, "driver": self.driver, "gpus": gpus}


@dataclass(frozen=True)
class GpuLoad:
    """One physical GPU as the ledger sees it."""

    index: int
    utilization: float | None  # 0..1
    memory_used: float | None  # fraction of total, 0..1
    error: str | None = None  # a GPU that cannot be read is never handed out
    memory_free: int | None = None  # bytes
    memory_total: int | None = None  # bytes
    # Why use outside every ptdesk experiment (a host process, a hand-started container) makes it
    # not free, when it is above the configured threshold (ptdesk.core.sharing.claims); None otherwise.
    unclaimed: str | None = None


@dataclass(frozen=True)
class GpuInventory:
    """The real device list for the ledger, or the reason there is none."""

    available: bool
    reason: str | None = None
    gpus: tuple[GpuLoad, ...] = ()
    driver: str | None = None  # the NVIDIA driver version that reported them
