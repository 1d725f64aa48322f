"""What a person asks for, checked before anything is created: names, owners, limits, keys.

`make_spec` turns what was typed (CLI options or the dashboard's form) into a LaunchSpec or one
clear InvalidInput/NotFound; `launch` then only has to make it real.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ptdesk.config import Config, check_size
from ptdesk.core.access.ownership import instance_containers
from ptdesk.core.base.keys import read_public_key_file
from ptdesk.core.base.models import LaunchSpec, Limits
from ptdesk.core.base.names import current_user, validate_name, validate_owner
from ptdesk.core.base.units import human_bytes
from ptdesk.core.engine.sdk import docker_sdk
from ptdesk.core.gpu import ledger
from ptdesk.core.host import workspace
from ptdesk.core.host.workspace import INFO_AGE, docker_root
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.errors import ConfigError, Conflict, InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

T = TypeVar("T")














def suggest_name(site: Site, owner: str, kind: str, on_engine: Collection[str] | None = None) -> str:
    """A free name like alice-jupyter-3 (free in the store and among the engine's containers).

    `on_engine`: the names the engine already has, when the caller listed them (no request then).
    """
    taken = {r.name for r in site.store.experiments()}
    taken |= set(instance_containers(site) if on_engine is None else on_engine)
    for n in range(1, 10_000):
        candidate = f"{owner}-{kind}-{n}"
        if candidate not in taken:
            return candidate
    raise Conflict("No free experiment name was found.", "Pass one with --name.")


def make_spec(site: Site, kind: str, *, name: str | None = None, owner: str | None = None,
              image: str | None = None, gpus: str | None = None, workspace: str | Path | None = None,
              memory: str | None = None, cpus: float | None = None, shm_size: str | None = None,
              pids: int | None = None, pubkey: str | Path | None = None,
              gpu_memory: str | None = None, queue: bool = False) -> LaunchSpec:
    """Validate everything a person typed and fill defaults; raises before anything is created."""
    config = site.config
    kind_ = get_kind(kind)  # InvalidInput naming the kinds there are
    owner = _checked("owner", validate_owner, owner or current_user())
    typed = name
    name = _checked("name", validate_name, name) if name else suggest_name(site, owner, kind)
    gpus = gpus or config.gpus  # one default for the CLI and the form
    _checked("gpus", ledger.parse_request, gpus, gpu_memory)
    limits, notes = _limits(config.limits, memory, cpus, pids, shm_size, _box(site))
    if workspace is not None:
        # Bound and recorded resolved: the engine would otherwise follow links again at every start.
        path = _checked("workspace", check_workspace, config, Path(workspace), docker_root(site.engine))
    else:
        path = config.workspaces / name  # made and checked by the launch (workspace.make_default)
    extra_keys: tuple[str, ...] = ()
    if pubkey is not None:
        if not kind_.accepts_pubkeys:
            takes = ", ".join(k.name for k in REGISTRY.values() if k.accepts_pubkeys)
            raise InvalidInput(f"--pubkey does not apply to {kind} experiments.", f"Kinds that take one: {takes}.")
        extra_keys = (read_public_key_file(pubkey),)
    return LaunchSpec(kind=kind, name=name, owner=owner, image=image or kind_.image(config),
                      gpus=gpus, workspace=path, limits=limits, extra_keys=extra_keys, auto_name=typed is None,
                      gpu_memory=gpu_memory, notes=notes, queue=queue)


def _checked(field: str, check: Callable[..., T], *args: Any) -> T:
    """`check(*args)`, its error marked with the input it was about (a form focuses that one)."""
    try:
        return check(*args)
    except PtdeskError as exc:
        exc.field = exc.field or field
        raise


def _box(site: Site) -> tuple[int, int | None]:
    """(CPUs, bytes of memory) of the workstation's engine — not of the machine ptdesk runs on."""
    try:
        info = site.engine.info(max_age=INFO_AGE)  # the launch's workspace check reads it too
    except PtdeskError:
        return os.cpu_count() or 1, None  # the launch meets the engine's trouble itself, and says it
    return int(info.get("NCPU") or os.cpu_count() or 1), int(info.get("MemTotal") or 0) or None


def _limits(defaults: Limits, memory: str | None, cpus: float | None, pids: int | None,
            shm_size: str | None, box: tuple[int, int | None]) -> tuple[Limits, tuple[str, ...]]:
    """The limits typed (or the config's), checked one by one so each error names its own input,
    and against the box: a default larger than the box is lowered to it, and said."""
    try:
        limits = Limits(memory=_checked("memory", _size, "memory", memory or defaults.memory),
                        cpus=float(cpus if cpus is not None else defaults.cpus),
                        pids=int(pids if pids is not None else defaults.pids),
                        shm_size=_checked("shm_size", _size, "shm size", shm_size or defaults.shm_size))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"A limit is not a number ({exc}).", "Use e.g. 4 for CPUs and 4096 for pids.") from None
    # NaN compares False with everything, so `< 0.01` alone would let a cpus of nan through.
    # The kernel's CFS quota cannot go below 1 % of a CPU; a smaller share is refused by the engine.
    if not math.isfinite(limits.cpus) or limits.cpus < 0.01:
        raise InvalidInput(f"CPUs must be at least 0.01 (got {limits.cpus:g}).", "Use e.g. 4 CPUs, or 0.5.",
                           field="cpus")
    if limits.pids <= 0:
        raise InvalidInput(f"The process limit (pids) must be positive (got {limits.pids}).", "Use e.g. 4096.",
                           field="pids")
    available, total = box
    notes: list[str] = []
    if limits.cpus > available:
        if cpus is not None:
            raise InvalidInput(f"This workstation has only {available} CPUs; {cpus:g} CPUs is more than that.",
                               f"Use {available} CPUs or less.", field="cpus")
        # The configured default is a ceiling, not a demand: small machines get what they have.
        notes.append(f"CPU limit {available} (the default {limits.cpus:g} is more than this workstation has).")
        limits = replace(limits, cpus=float(available))
    if total and docker_sdk().utils.parse_bytes(limits.memory) > total:
        if memory is not None:
            raise InvalidInput(f"This workstation has only {human_bytes(total)} of memory; {memory} is more than "
                               "that.", f"Use {total // 1024**3}g or less.", field="memory")
        notes.append(f"Memory limit {total // 1024**2}m (the default {limits.memory} is more than this "
                     "workstation has).")
        limits = replace(limits, memory=f"{total // 1024**2}m")
    return limits, tuple(notes)


def _size(what: str, text: str) -> str:
    try:
        return check_size(what, text)
    except ConfigError as exc:  # check_size's words (and hint) read well as an input error too
        raise InvalidInput(exc.message, exc.hint) from None


def check_workspace(config: Config, path: Path, engine_root: Path | None = None) -> Path:
    """The resolved folder if it may be a workspace (the rule: ptdesk.core.host.workspace); InvalidInput
    or NotFound otherwise."""
    return workspace.check(config, path, engine_root=engine_root)


def writable_by(path: Path, uid: int, gid: int) -> bool:
    """Can the container user (uid:gid) create files in `path`? Checked by mode bits, as the kernel
    would for that user inside the container (no capabilities there to override them)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)




def renamed(config: Config, spec: LaunchSpec, name: str) -> LaunchSpec:
    """The spec under another name; a default workspace follows the name."""
    default = spec.workspace == config.workspaces / spec.name
    return replace(spec, name=name, workspace=config.workspaces / name if default else spec.workspace)
