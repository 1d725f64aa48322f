"""Host PID -> container -> ptdesk experiment and person.

NVML reports host PIDs. Which container a PID lives in is written in /proc/<pid>/cgroup; which
experiment and owner that container belongs to is written in its ptdesk labels (one
`list_managed` request for all of them), or, while the engine is down, in the state store.
Which *person* runs it is its uid (/proc/<pid>/status; containers share the host's uids): in an
experiment of this home, a collaborator's account uid (the store's account map) names them, any
other uid the owner. A PID in no container is a host process, and its owner is the user it runs as.

Parsing is pure (text in, id out) and the readers take a proc root, so tests can feed fixtures.
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ptdesk.core.base.gpu_models import GpuProcess, GpuSnapshot
from ptdesk.core.base.models import LABEL_NAME, LABEL_OWNER
from ptdesk.core.base.text import printable
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:  # the engine pulls in docker-py; attribution without an engine must not need it
    from ptdesk.core.engine.client import Engine
    from ptdesk.core.store.state import Store

PROC = Path("/proc")
Runtime = Literal["docker", "podman", "containerd", "cri-o", "unknown"]

_HEX = r"[0-9a-f]{64}"
# One cgroup path component that names a container, most specific first.
_SCOPES: tuple[tuple[re.Pattern[str], Runtime], ...] = (
    (re.compile(rf"^docker-({_HEX})\.scope$"), "docker"),  # systemd driver, v1 and v2
    (re.compile(rf"^libpod-({_HEX})(?:\.scope)?$"), "podman"),  # libpod-conmon-… does not match
    (re.compile(rf"^cri-containerd-({_HEX})\.scope$"), "containerd"),
    (re.compile(rf"^crio-({_HEX})(?:\.scope)?$"), "cri-o"),
    (re.compile(rf"^[^:]*:cri-containerd:({_HEX})$"), "containerd"),  # kubelet systemd, cgroupfs-style
)
_BARE = re.compile(rf"^({_HEX})$")  # cgroupfs driver: /docker/<id>, /kubepods/…/pod…/<id>


@dataclass(frozen=True)
class ContainerRef:
    id: str  # the full 64-hex container id
    runtime: Runtime


@dataclass(frozen=True)
class PidOwner:
    """Where one host PID lives: a container (or None for a host process) and its Unix user."""

    pid: int
    container: ContainerRef | None
    uid: int | None
    user: str | None


def container_from_path(path: str) -> ContainerRef | None:
    """The container a cgroup path belongs to. The outermost wins: with Docker-in-Docker,
    /docker/<outer>/docker/<inner> is <outer>, the container the host's engine knows."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        for pattern, runtime in _SCOPES:
            match = pattern.fullmatch(part)
            if match:
                return ContainerRef(match.group(1), runtime)
        bare = _BARE.fullmatch(part)
        if bare:
            parent = parts[i - 1] if i else ""
            if parent == "docker":
                return ContainerRef(bare.group(1), "docker")
            if parent == "libpod_parent":
                return ContainerRef(bare.group(1), "podman")
            if any(p.startswith("kubepods") for p in parts[:i]):
                return ContainerRef(bare.group(1), "containerd")
            return ContainerRef(bare.group(1), "unknown")
    return None


def container_from_cgroup(text: str) -> ContainerRef | None:
    """Parse /proc/<pid>/cgroup (v1: many `id:controllers:path` lines; v2: one `0::path`)."""
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        ref = container_from_path(fields[2].strip())
        if ref:
            return ref
    return None


def uid_from_status(text: str) -> int | None:
    """The real uid from /proc/<pid>/status (`Uid:\treal\teffective\tsaved\tfs`)."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)  # a uid with no passwd entry (common for container users): show the number


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the process ended, or we may not look (hidepid): not knowable, not an error
        return None


def resolve_pid(pid: int, proc_root: Path = PROC) -> PidOwner:
    cgroup = _read(proc_root / str(pid) / "cgroup")
    status = _read(proc_root / str(pid) / "status")
    uid = uid_from_status(status) if status else None
    return PidOwner(pid=pid, container=container_from_cgroup(cgroup) if cgroup else None, uid=uid,
                    user=user_name(uid) if uid is not None else None)


def _pids(snapshot: GpuSnapshot) -> set[int]:
    return {p.pid for g in snapshot.gpus for p in g.processes}


def any_in_container(snapshot: GpuSnapshot, proc_root: Path = PROC) -> bool:
    """Whether attribution would need the engine (lets callers connect only when it matters)."""
    return any(resolve_pid(pid, proc_root).container for pid in _pids(snapshot))


@dataclass(frozen=True)
class _Who:
    experiment: str | None
    owner: str | None


def _from_engine(engine: Engine | None, instance: str) -> dict[str, _Who] | None:
    if engine is None:
        return None
    try:
        containers = engine.list_managed(instance)
    except PtdeskError:
        return None  # engine down: fall back to the store, still show every process
    labelled = {}
    for c in containers:
        labels = c.get("Labels") or {}
        # Any engine user may have written these labels: never printed raw.
        name, owner = labels.get(LABEL_NAME), labels.get(LABEL_OWNER)
        labelled[c["Id"]] = _Who(printable(name) if name else None, printable(owner) if owner else None)
    return labelled


def _accounts(store: Store | None) -> dict[int, str]:
    """uid -> collaborator, from the store's account map ({} without a store)."""
    if store is None:
        return {}
    try:
        return store.account_map()
    except Exception:  # a broken store must not hide the GPU processes
        return {}


def _from_store(store: Store | None) -> dict[str, _Who]:
    if store is None:
        return {}
    try:
        records = store.experiments()
    except Exception:  # a broken store must not hide the GPU processes
        return {}
    return {r.container_id: _Who(r.name, r.owner) for r in records if r.container_id}


def attribute(snapshot: GpuSnapshot, engine: Engine | None, instance: str, *,
              store: Store | None = None, proc_root: Path = PROC) -> GpuSnapshot:
    """Fill container / experiment / owner / host_user on every GPU process.

    Asks the engine at most once, and only when some PID is in a container; never raises.
    """
    pids = _pids(snapshot)
    if not pids:
        return snapshot
    owners = {pid: resolve_pid(pid, proc_root) for pid in pids}
    labelled: dict[str, _Who] = {}
    ours: dict[str, _Who] = {}
    people: dict[int, str] = {}
    if any(o.container for o in owners.values()):
        from_engine = _from_engine(engine, instance)
        ours = _from_store(store)
        # The engine's labels are the truth; the store only fills in while the engine is away.
        labelled = {**ours, **(from_engine or {})}
        people = _accounts(store)

    def fill(process: GpuProcess) -> GpuProcess:
        who = owners[process.pid]
        if who.container is None:
            return replace(process, container=None, experiment=None, owner=who.user, host_user=who.user,
                           person=who.user)
        known = labelled.get(who.container.id, _Who(None, None))
        # The account map is this home's: it names people only in this home's own experiments.
        person = people.get(who.uid) if who.container.id in ours and who.uid is not None else None
        return replace(process, container=who.container.id, experiment=known.experiment,
                       owner=known.owner, host_user=who.user, person=person or known.owner)

    gpus = tuple(replace(g, processes=tuple(fill(p) for p in g.processes)) for g in snapshot.gpus)
    return replace(snapshot, gpus=gpus)
