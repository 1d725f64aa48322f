"""Turn a LaunchSpec into a hardened, running, proven-ready container — or into nothing at all.

Order matters for cleanup: the record is written as "launching" (with the GPUs it reserves) before
the container exists, so a launcher killed half-way leaves a record that reconciliation rolls back.
Any failure after that removes what was created and the record, then re-raises.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import docker.types

from ptdesk.config import Config, check_size
from ptdesk.core import ledger, material
from ptdesk.core.desk import Desk
from ptdesk.core.keys import parse_public_key
from ptdesk.core.kinds import Plan, get_kind
from ptdesk.core.models import (
    KINDS,
    LABEL_GPUS,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_OWNER,
    LABEL_WORKSPACE,
    Experiment,
    LaunchSpec,
    Limits,
)
from ptdesk.core.state import ExperimentRecord
from ptdesk.errors import Conflict, ImageMissing, InvalidInput, LaunchFailed, NotFound, PtdeskError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
OWNER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
WORKSPACE_MOUNT = "/workspace"
Progress = Callable[[str], None]


def container_name(config: Config, name: str) -> str:
    """Engine-wide container name; the instance keeps separate installations apart."""
    return f"ptdesk-{name}" if config.instance == "default" else f"ptdesk-{config.instance}-{name}"


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(f"{name!r} is not a valid experiment name.",
                           "Use 1-41 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def validate_owner(owner: str) -> str:
    if not OWNER_RE.match(owner):
        raise InvalidInput(f"{owner!r} is not a valid owner name.", "Use a Unix-style user name, like alice.")
    return owner


def suggest_name(desk: Desk, owner: str, kind: str) -> str:
    """A free name like alice-jupyter-3 (free in the store and on the engine)."""
    taken = {r.name for r in desk.store.experiments()}
    for n in range(1, 10_000):
        candidate = f"{owner}-{kind}-{n}"
        if candidate not in taken and desk.engine.try_inspect(container_name(desk.config, candidate)) is None:
            return candidate
    raise Conflict("No free experiment name was found.", "Pass one with --name.")


def make_spec(desk: Desk, kind: str, *, name: str | None = None, owner: str | None = None,
              image: str | None = None, gpus: str = "none", workspace: str | Path | None = None,
              memory: str | None = None, cpus: float | None = None, shm_size: str | None = None,
              pids: int | None = None, pubkey: str | Path | None = None) -> LaunchSpec:
    """Validate everything a person typed and fill defaults; raises before anything is created."""
    config = desk.config
    if kind not in KINDS:
        raise InvalidInput(f"Unknown kind {kind!r}.", "Use ssh or jupyter.")
    owner = validate_owner(owner or _current_user())
    typed = name
    name = validate_name(name) if name else suggest_name(desk, owner, kind)
    ledger.parse_request(gpus)
    defaults = config.limits
    try:
        limits = Limits(memory=check_size("memory", memory or defaults.memory),
                        cpus=float(cpus if cpus is not None else defaults.cpus),
                        pids=int(pids if pids is not None else defaults.pids),
                        shm_size=check_size("shm size", shm_size or defaults.shm_size))
    except Exception as exc:  # ConfigError from check_size reads well as input error too
        raise InvalidInput(str(exc)) from None
    if limits.cpus <= 0 or limits.pids <= 0:
        raise InvalidInput("CPUs and pids limits must be positive.")
    available = os.cpu_count() or 1
    if limits.cpus > available:
        if cpus is not None:
            raise InvalidInput(f"This machine has only {available} CPUs; --cpus {cpus:g} is more than that.",
                               f"Use --cpus {available} or less.")
        # The configured default is a ceiling, not a demand: small machines get what they have.
        limits = Limits(limits.memory, float(available), limits.pids, limits.shm_size)
    if workspace is not None:
        path = Path(workspace).expanduser().absolute()
        if not path.is_dir():
            raise NotFound(f"The workspace folder {path} does not exist.",
                           "Create it first, or leave out --workspace to get a fresh one.")
    else:
        path = config.workspaces / name
    extra_keys: tuple[str, ...] = ()
    if pubkey is not None:
        if kind != "ssh":
            raise InvalidInput("--pubkey only applies to ssh experiments.")
        extra_keys = (_read_public_key(Path(pubkey)),)
    return LaunchSpec(kind=kind, name=name, owner=owner, image=image or get_kind(kind).image(config),
                      gpus=gpus, workspace=path, limits=limits, extra_keys=extra_keys, auto_name=typed is None)


def _read_public_key(path: Path) -> str:
    try:
        text = path.expanduser().read_text()
    except (OSError, UnicodeDecodeError):
        raise NotFound(f"The public key file {path} cannot be read.", "Pass the path of your .pub file.") from None
    return parse_public_key(text)


def _current_user() -> str:
    import getpass

    return os.environ.get("SUDO_USER") or getpass.getuser()


def launch(desk: Desk, spec: LaunchSpec, progress: Progress = lambda step: None) -> Experiment:
    config, store = desk.config, desk.store
    kind = get_kind(spec.kind)
    engine = desk.engine
    progress("Checking the image")
    if not engine.image_exists(spec.image):
        raise ImageMissing(f"Image {spec.image} is not on this engine.",
                           f"Build it with: ptdesk images build {spec.kind}")
    inventory = desk.gpus.inventory() if spec.gpus != "none" else None

    progress("Reserving name and GPUs")
    with store.tx() as conn:
        if spec.auto_name:
            # A launch running beside this one may have taken the suggested name: pick again, under the lock.
            spec = _renamed(config, spec, suggest_name(desk, spec.owner, spec.kind))
        cname = container_name(config, spec.name)
        if store.experiment(spec.name) or engine.try_inspect(cname):
            raise Conflict(f"An experiment named {spec.name!r} already exists.", "Pick another --name.")
        gpus = ledger.allocate(spec.gpus, store.held_gpus(conn), inventory)
        store.insert_experiment(conn, ExperimentRecord(
            name=spec.name, kind=spec.kind, owner=spec.owner, image=spec.image, status="launching",
            created=time.time(), gpus=gpus, workspace=str(spec.workspace), launcher_pid=os.getpid(),
            limits=spec.limits, extra_keys=spec.extra_keys))

    container_id: str | None = None
    made_workspace = False
    try:
        made_workspace = _ensure_workspace(config, spec.workspace)
        progress("Generating keys and secrets")
        plan = kind.plan(config, spec)
        if plan.host_public_key:
            store.update_experiment(spec.name, host_public_key=plan.host_public_key)
        progress("Creating the container")
        container_id = engine.create(
            name=cname, image=spec.image, labels=_labels(config, spec, gpus), user=plan.user,
            environment=plan.environment, exposed=[plan.container_port],
            host_config=_host_config(config, spec, plan, gpus),
        )
        store.update_experiment(spec.name, container_id=container_id)
        progress("Placing secrets")
        # One archive for all folders: every put_archive mounts the container's filesystem (~50 ms).
        engine.put_files(container_id, "/", [replace(f, name=f"{dest.strip('/')}/{f.name}")
                                             for dest, files in plan.files for f in files])
        progress("Starting")
        engine.start(container_id)
        bound = engine.published_port(container_id, plan.container_port)
        if bound is None:
            if not _running(desk, container_id):  # exited at once: the engine drops its ports
                raise LaunchFailed("The container stopped right after it started.")
            raise NotFound("The engine published no port for the container.", "Check `docker inspect` output.")
        store.update_experiment(spec.name, port=bound[1])
        record = store.experiment(spec.name)
        assert record is not None
        progress("Waiting until the service lets you in")
        kind.wait_ready(config, record, config.connect_host, bound[1], config.ready_timeout,
                        is_alive=lambda: _running(desk, container_id))
        store.update_experiment(spec.name, status="running", launcher_pid=None)
        store.audit("launch", spec.name, {"kind": spec.kind, "owner": spec.owner, "image": spec.image,
                                           "gpus": list(gpus), "port": bound[1],
                                           "host_key": record.host_public_key and _fp(record.host_public_key)})
    except BaseException as exc:
        if isinstance(exc, LaunchFailed) and container_id:
            # The rollback removes the container and its logs: say what it printed while we can.
            exc.hint = _last_words(desk, container_id) or exc.hint
        rollback(desk, spec.name, container_id)
        if made_workspace:
            with contextlib.suppress(OSError):  # only if still empty: never lose a file
                spec.workspace.rmdir()
        raise
    from ptdesk.core.experiments import get

    return get(desk, spec.name)


def _renamed(config: Config, spec: LaunchSpec, name: str) -> LaunchSpec:
    """The spec under another name; a default workspace follows the name."""
    default = spec.workspace == config.workspaces / spec.name
    return replace(spec, name=name, workspace=config.workspaces / name if default else spec.workspace)


def rollback(desk: Desk, name: str, container_id: str | None) -> None:
    """Undo a launch: container, host-side secrets, record (and with it the GPU reservation)."""
    try:
        if container_id:
            desk.engine.remove(container_id, force=True)
        else:
            desk.engine.remove(container_name(desk.config, name), force=True)
    finally:
        material.discard(desk.config, name)
        desk.store.delete_experiment(name)


def _fp(public_line: str) -> str:
    from ptdesk.core.keys import fingerprint

    return fingerprint(public_line)


def _last_words(desk: Desk, container_id: str) -> str | None:
    """What a container that failed its launch last printed (and its exit code if it died)."""
    try:
        state = desk.engine.inspect(container_id)["State"]
        frames = desk.engine.logs(container_id, tail=5)
        try:
            lines = [ln for ln in b"".join(frames).decode(errors="replace").splitlines() if ln.strip()]
        finally:
            frames.close()
    except PtdeskError:
        return None
    if state.get("Running"):
        return f"Its last output was: {lines[-1].strip()}" if lines else None
    said = f" after printing: {lines[-1].strip()}" if lines else " without any output"
    return f"It exited with code {state.get('ExitCode')}{said}"


def _running(desk: Desk, container_id: str) -> bool:
    data = desk.engine.try_inspect(container_id)
    return bool(data and data["State"].get("Running"))


def _ensure_workspace(config: Config, path: Path) -> bool:
    """Make a default workspace for the host user; True when this call created it."""
    if path.exists():
        return False
    path.mkdir(parents=True, mode=0o750)
    if os.getuid() == 0:  # made by root for someone else: hand it to the host user
        os.chown(path, config.uid, config.gid)
    return True


def _labels(config: Config, spec: LaunchSpec, gpus: tuple[int, ...]) -> dict[str, str]:
    return {
        LABEL_MANAGED: "1", LABEL_INSTANCE: config.instance, LABEL_KIND: spec.kind, LABEL_OWNER: spec.owner,
        LABEL_NAME: spec.name, LABEL_GPUS: ",".join(map(str, gpus)), LABEL_WORKSPACE: str(spec.workspace),
    }


def _host_config(config: Config, spec: LaunchSpec, plan: Plan, gpus: tuple[int, ...]) -> dict:
    """The hardening every container gets (DESIGN.md, security baseline)."""
    limits = spec.limits
    host_config: dict = {
        "port_bindings": {plan.container_port: (config.bind_address, None)},
        "binds": {str(spec.workspace): {"bind": WORKSPACE_MOUNT, "mode": "rw"}},
        "cap_drop": ["ALL"],
        "cap_add": list(plan.cap_add),
        "security_opt": ["no-new-privileges:true"],
        "privileged": False,
        "init": True,
        "pids_limit": limits.pids,
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,  # no swap beyond the memory limit
        "nano_cpus": int(limits.cpus * 1e9),
        "shm_size": limits.shm_size,
        "tmpfs": dict(plan.tmpfs),
        # Logs stay bounded however chatty the experiment is.
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "20m", "max-file": "3"}),
    }
    if gpus:
        host_config["device_requests"] = [
            docker.types.DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])]
    return host_config
