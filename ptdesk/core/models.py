"""Immutable snapshots that cross from the core into the CLI and the dashboard."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["ssh", "jupyter"]
KINDS: tuple[Kind, ...] = ("ssh", "jupyter")

# Labels every managed container carries (labels cannot change after create).
LABEL_MANAGED = "ptdesk.managed"
LABEL_INSTANCE = "ptdesk.instance"
LABEL_KIND = "ptdesk.kind"
LABEL_OWNER = "ptdesk.owner"
LABEL_NAME = "ptdesk.name"
LABEL_GPUS = "ptdesk.gpus"
LABEL_WORKSPACE = "ptdesk.workspace"


@dataclass(frozen=True)
class Limits:
    """Resource limits a container gets; the config holds the defaults."""

    memory: str = "16g"
    cpus: float = 4.0
    pids: int = 4096
    shm_size: str = "8g"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launch needs, validated, before anything is created."""

    kind: Kind
    name: str
    owner: str
    image: str
    gpus: str  # "none" | "all" | "auto" | "0,2"
    workspace: Path
    limits: Limits


@dataclass(frozen=True)
class SshAccess:
    host: str
    port: int
    user: str
    identity_file: str
    known_hosts: str
    host_key_fingerprint: str
    command: str


@dataclass(frozen=True)
class JupyterAccess:
    url: str
    host: str
    port: int
    token: str


@dataclass(frozen=True)
class Experiment:
    """One managed container as ptdesk sees it: the engine's view joined with the state store."""

    name: str
    id: str
    kind: Kind
    owner: str
    image: str
    status: str
    gpus: tuple[int, ...] = ()
    created: float = 0.0
    started: float | None = None
    workspace: str | None = None
    limits: Limits | None = None
    ssh: SshAccess | None = None
    jupyter: JupyterAccess | None = None
    orphan: bool = False  # labelled container without a record (or the reverse)

    @property
    def connect(self) -> str:
        """How to reach it, in one line: the ssh command or the Jupyter URL."""
        if self.ssh:
            return self.ssh.command
        if self.jupyter:
            return self.jupyter.url
        return ""

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
        if self.kind == "ssh":
            out["ssh"] = asdict(self.ssh) if self.ssh else None
        if self.kind == "jupyter":
            out["jupyter"] = asdict(self.jupyter) if self.jupyter else None
        if self.orphan:
            out["orphan"] = True
        return out


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory: int | None  # bytes; None when the driver does not say
    sm_utilization: int | None = None
    kind: Literal["compute", "graphics"] = "compute"
    container: str | None = None  # container id
    experiment: str | None = None
    owner: str | None = None  # ptdesk owner, or the host user for host processes
    host_user: str | None = None


@dataclass(frozen=True)
class GpuSample:
    index: int
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


@dataclass(frozen=True)
class GpuSnapshot:
    available: bool
    reason: str | None
    driver: str | None
    gpus: tuple[GpuSample, ...] = field(default_factory=tuple)
    taken_at: float = 0.0


@dataclass(frozen=True)
class Collaborator:
    name: str
    fingerprint: str
    public_key: str
    identity_file: str | None
    created: float
    expires: float | None = None
    grants: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditEntry:
    time: float
    actor: str
    action: str
    target: str
    detail: dict = field(default_factory=dict)
