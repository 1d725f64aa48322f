"""Immutable snapshots that cross from the core into the CLI and the dashboard."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ptdesk.config import Limits

# Labels every managed container carries (labels cannot change after create).
LABEL_MANAGED = "ptdesk.managed"
LABEL_INSTANCE = "ptdesk.instance"
LABEL_KIND = "ptdesk.kind"
LABEL_OWNER = "ptdesk.owner"
LABEL_NAME = "ptdesk.name"
LABEL_GPUS = "ptdesk.gpus"
LABEL_WORKSPACE = "ptdesk.workspace"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launch needs, validated, before anything is created."""

    kind: str
    name: str
    owner: str
    image: str
    gpus: str  # "none" | "all" | "auto" | "0,2"
    workspace: Path
    limits: Limits
    extra_keys: tuple[str, ...] = ()  # ssh: public keys the owner brought, authorised too
    auto_name: bool = False  # name was suggested, not typed: the launcher may pick the next free one
    queue: bool = False  # no GPU free now: file it in the GPU queue instead of failing
    gpu_memory: str | None = None  # --gpu-memory: free memory each GPU must have (ptdesk.core.gpu.ledger)
    notes: tuple[str, ...] = ()  # what the person should know about the defaults it got (said after the launch)
    # A batch job's (ptdesk run): its command, the code snapshot (a tar placed before start), extra
    # binds (host path, container path, "ro" | "rw") and environment.
    command: tuple[str, ...] = ()
    snapshot: Path | None = None
    mounts: tuple[tuple[str, str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    layer_from: str | None = None  # --like: the experiment container whose writable layer it starts with


@dataclass(frozen=True)
class Launched:
    """What a launch gives back: the ready experiment, and what the person should know about it
    (one sentence each, with the fix where there is one). Both front ends show the same words."""

    experiment: Experiment
    warnings: tuple[str, ...] = ()
    # Which GPUs auto / any:N chose and why ("the least loaded free ones: ..."); None otherwise.
    gpu_choice: str | None = None


@dataclass(frozen=True)
class Access:
    """How a person reaches one experiment, as its kind says (ptdesk.core.kinds): the one connect
    line (ssh command, URL), the rows people read (`ptdesk new`, the details screen) and the JSON
    object scripts read under the kind's name (`"ssh": {...}` in `ptdesk ls --json`)."""

    connect: str
    rows: tuple[tuple[str, str], ...]
    fields: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.fields)


@dataclass(frozen=True)
class EnvironmentMark:
    """An experiment's environment at a glance (ptdesk.core.environment.drift): cheap to list, no exec."""

    fingerprint: str | None  # of the image it was created from; None: the image recorded none
    image_id: str | None
    behind: bool = False  # its image is no longer the current build of the tag it was launched from
    changed: bool | None = None  # packages changed since launch, at the last check; None: never checked
    checked: float | None = None  # when that check ran
    cuda: str | None = None  # the image's CUDA (PyTorch's), "none" without PyTorch
    driver_warning: str | None = None  # one sentence when the host driver is older than that CUDA needs

    @property
    def marks(self) -> tuple[str, ...]:
        return tuple(word for word, on in (("behind", self.behind), ("changed", self.changed),
                                            ("driver", self.driver_warning)) if on)

    @property
    def text(self) -> str:
        """"3f2a9c0d1b7e", "3f2a9c0d1b7e behind,changed" or "-"."""
        return " ".join(filter(None, (self.fingerprint or "-", ",".join(self.marks)))) or "-"

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "image_id": self.image_id, "behind": self.behind,
                "changed": self.changed, "checked": self.checked, "cuda": self.cuda,
                "driver_warning": self.driver_warning}


def status_word(value: str) -> str:
    """The engine's "exited" is what a person calls stopped (ptdesk stop, or s): the word people
    read, in the CLI and the dashboard alike (JSON keeps the engine's word for scripts)."""
    return "stopped" if value == "exited" else value


def listing_mark(foreign: bool, unverified: bool, orphan: bool) -> str:
    """One word for what ptdesk knows of an experiment's ownership, the same in every listing: another
    user's; someone's that this home cannot prove it made (unverified); this home's record whose
    container is gone (orphan)."""
    return "other user" if foreign else "unverified" if unverified else "orphan" if orphan else ""


@dataclass(frozen=True)
class Experiment:
    """One managed container as ptdesk sees it: the engine's view joined with the state store."""

    name: str
    id: str
    kind: str
    owner: str
    image: str
    status: str
    gpus: tuple[int, ...] = ()
    created: float = 0.0
    workspace: str | None = None
    limits: Limits | None = None
    access: Access | None = None
    orphan: bool = False  # labelled container without a record (or the reverse)
    # Another user's container on the shared engine: listed (read-only) but never adopted or changed.
    foreign: bool = False
    # No record in this home's store: nothing proves this home made it (labels are not identity),
    # so it is listed read-only with no connect line (ptdesk.core.access.seal).
    unverified: bool = False
    environment: EnvironmentMark | None = None  # set by the listing (ptdesk.core.environment.drift.marked)
    # Who is logged in right now (SSH experiments of this home; ptdesk.core.access.sessions): the owner's
    # and collaborators' names; None when it cannot be seen from here.
    logged_in: tuple[str, ...] | None = None
    waiting: str | None = None  # in the GPU queue: why it waits (ptdesk.core.sharing.gpu_queue)

    @property
    def connect(self) -> str:
        """How to reach it, in one line: the ssh command or the Jupyter URL."""
        return self.access.connect if self.access else ""

    def to_json(self) -> dict:
        out: dict = {
            "name": self.name,
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "image": self.image,
            "status": self.status,
            "gpus": list(self.gpus),
        }
        if self.kind not in out:  # the kind's own object: "ssh": {...}, "jupyter": {...}
            out[self.kind] = self.access.to_json() if self.access else None
        if self.orphan:
            out["orphan"] = True
        if self.foreign:
            out["foreign"] = True
        if self.unverified:
            out["unverified"] = True
        if self.environment is not None:
            out["environment"] = self.environment.to_json()
        if self.logged_in is not None:
            out["logged_in"] = list(self.logged_in)
        if self.waiting is not None:
            out["waiting"] = self.waiting
        return out


# --- GPUs ------------------------------------------------------------------------------------
# Owned by ptdesk.core.gpu.nvml (sampling), ptdesk.core.gpu.procmap (attribution) and ptdesk.core.gpu.ledger.


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


@dataclass(frozen=True)
class Collaborator:
    name: str
    fingerprint: str
    public_key: str
    identity_file: str | None
    created: float
    expires: float | None = None
    grants: tuple[str, ...] = ()

    def expired(self, now: float | None = None) -> bool:
        """Their key no longer logs in anywhere (sshd refuses it; ptdesk ended what it ran)."""
        return self.expires is not None and self.expires <= (time.time() if now is None else now)


@dataclass(frozen=True)
class ContainerRotation:
    """How a key rotation went in one container (ptdesk.core.collaborators.rotation)."""

    name: str
    status: Literal["rotated", "pending", "failed"]  # pending: the old key still works there
    verified: bool  # the new key logged in and the old one was refused
    detail: str

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "verified": self.verified, "detail": self.detail}


@dataclass(frozen=True)
class RotationResult:
    name: str
    old_fingerprint: str
    fingerprint: str
    identity_file: str | None
    containers: tuple[ContainerRotation, ...]
    resumed: bool = False  # an unfinished earlier rotation was finished instead of starting a new one

    @property
    def unfinished(self) -> tuple[ContainerRotation, ...]:
        return tuple(c for c in self.containers if c.status != "rotated")

    def to_json(self) -> dict:
        return {"name": self.name, "old_fingerprint": self.old_fingerprint, "fingerprint": self.fingerprint,
                "identity_file": self.identity_file, "resumed": self.resumed,
                "containers": [c.to_json() for c in self.containers]}


@dataclass(frozen=True)
class AuditEntry:
    time: float
    actor: str
    action: str
    target: str
    detail: dict = field(default_factory=dict)
