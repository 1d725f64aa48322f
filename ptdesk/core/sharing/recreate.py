"""Re-create an experiment's container on other GPUs (or none), losing nothing the person made.

Docker cannot change a container's devices, so giving a stopped experiment other GPUs (or none),
or admitting a queued one (a created, never started container) onto the GPUs it was given, means a
new container. It gets the old one's whole config (name, labels, hardening, limits, mounts, port,
environment, the exact image id it ran, so a moved tag changes nothing) with new device requests
and a new seal over the new `ptdesk.gpus` label, and everything in the old one's writable layer:
what the person installed (pip, apt) or wrote outside the workspace since launch, and the secrets
ptdesk placed before the first start (host key, authorized_keys, token). That layer is copied from
container to container as tar streams (`docker diff`, then get_archive -> put_archive, owners and
modes kept) — never by `docker commit`, which would put those secrets into an image layer anyone
on the engine can read and push.

Atomic from the person's view: the new container is made under a temporary name and filled while
the old one stays as it was; only then are the names swapped, the record pointed at the new one
and the old one removed. Any failure before the swap removes the new container and leaves the old
one untouched. Files the person deleted from the image's own folders are not deleted again (a
created container cannot run `rm`); nothing they made is lost. A re-creation cut short (its
process killed) leaves a twin named `NAME.next-…` or `NAME.replaced-…` (with its process id and
boot): `undo_interrupted`, run by every reconcile, gives the name back to the container the record
points at and removes the other — never one whose re-creation may still be running.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.access.ownership import foreign_owner
from ptdesk.core.access.seal import LABEL_SEAL, seal, secret_digest, verifies
from ptdesk.core.base.models import LABEL_GPUS, LABEL_KIND, LABEL_NAME
from ptdesk.core.host.processes import pid_alive
from ptdesk.core.kinds import get_kind
from ptdesk.errors import Conflict, EngineUnavailable, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

# `NAME.next-PID-BOOT-RANDOM` / `NAME.replaced-…`: the twins of a re-creation in progress.
TWIN = re.compile(r"(?P<base>.+)\.(?P<role>next|replaced)-(?P<pid>\d+)-(?P<boot>[0-9a-f]{8})-[0-9a-f]{6}")
# A re-creation copies a writable layer: one that started this long ago on another machine is dead.
STALE_AFTER = 3600.0
QUEUE_LABELS = "ptdesk.queue"  # the prefix of every label ptdesk.core.sharing.gpu_queue writes
# `docker diff` kinds.
MODIFIED, ADDED, DELETED = 0, 1, 2
# Written by the engine at every start (bind-mounted over the layer, `init` included): never carried over.
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/.dockerenv",
                          "/usr/sbin/docker-init", "/sbin/docker-init"})


@dataclass(frozen=True)
class Recreated:
    """The new container of an experiment, its GPUs, and how many paths of the old layer it got."""

    container_id: str
    gpus: tuple[int, ...]
    copied: int


def recreate(site: Site, container_id: str, gpus: Sequence[int], queue: Mapping[str, str] | None = None,
             own: Sequence[int] | None = None) -> Recreated:
    """Replace a stopped (or never started) container by one with `gpus` (empty: no GPU).

    The caller holds the engine's GPU lock when `gpus` were just allocated (the new container's
    device request is what books them for every user's ledger). The store's record of the
    experiment, if it points at the old container, is pointed at the new one with its new GPUs.
    `queue`: the new one is a queue entry with these labels (the old one's queue labels never
    carry over). `own`: the GPUs its sealed label names when they differ from its device request
    (a queue entry's cancel gives a stopped experiment back the GPUs it had, without booking them).
    """
    engine = site.engine
    old = engine.inspect(container_id)
    if (old.get("State") or {}).get("Running"):
        raise Conflict("An experiment must be stopped before it can move to other GPUs.",
                       "Stop it first (ptdesk stop NAME).")
    labels = dict((old.get("Config") or {}).get("Labels") or {})
    gpus = tuple(gpus)
    config = _new_config(site, old, labels, gpus, queue or {}, tuple(gpus if own is None else own))
    name = old["Name"].lstrip("/")
    # Who is re-creating (undo_interrupted leaves a live one alone), and a random part.
    from ptdesk.core.engine.locks import boot_id
    suffix = f"{os.getpid()}-{boot_id()[:8] or '00000000'}-{secrets.token_hex(3)}"
    new_id = engine.create_from_config(f"{name}.next-{suffix}", config)
    renamed_old = False
    try:
        copied = copy_layer(site, old["Id"], new_id)
        engine.rename(old["Id"], f"{name}.replaced-{suffix}")
        renamed_old = True
        engine.rename(new_id, name)
    except BaseException:
        engine.remove(new_id, force=True)
        if renamed_old:
            engine.rename(old["Id"], name)
        raise
    _point_record(site, labels.get(LABEL_NAME) or "", old["Id"], new_id, tuple(gpus if own is None else own))
    engine.remove(old["Id"], force=True)
    return Recreated(new_id, gpus, copied)


def _new_config(site: Site, old: dict, labels: dict[str, str], gpus: tuple[int, ...], queue: Mapping[str, str],
                own: tuple[int, ...]) -> dict:
    """The old container's config with new device requests and a seal over the new labels."""
    kind = get_kind(labels.get(LABEL_KIND) or "")
    try:
        digest = secret_digest([site.engine.read_file(old["Id"], path) for path in kind.sealed_paths])
    except EngineUnavailable:
        raise
    except PtdeskError:
        digest = ""  # its secrets are missing or unreadable: it cannot be one this home sealed
    if not digest or not verifies(site.config, labels, digest):
        # Only a container this home provably made is given new GPUs (labels are not identity).
        raise PtdeskError(f"Container {old['Name'].lstrip('/')} was not made by this ptdesk home (its seal does "
                          "not verify), so it is not re-created.", "Ask whoever made it; ptdesk ls --all lists it.")
    for key in [k for k in labels if k.startswith(QUEUE_LABELS)]:
        del labels[key]  # an admitted one's history, or the entry it was: what it is now is said below
    labels[LABEL_GPUS] = ",".join(map(str, own))
    labels[LABEL_SEAL] = seal(site.config, labels, digest)
    labels.update(queue)  # never sealed: the queue's bookkeeping, which admission changes
    host = dict(old.get("HostConfig") or {})
    host["DeviceRequests"] = [{"Driver": "", "Count": 0, "DeviceIDs": [str(g) for g in gpus],
                               "Capabilities": [["gpu"]], "Options": {}}] if gpus else None
    config = dict(old.get("Config") or {})
    # The image it really ran (a tag may have moved since): the copied layer belongs on that one.
    config.update(Labels=labels, Image=old["Image"], HostConfig=host)
    return config


def layer_roots(changes: Iterable[dict]) -> list[tuple[str, bool]]:
    """The fewest paths whose copies carry every added or changed file of a writable layer.

    An added folder is copied whole (everything under it is new); a changed folder's own entry
    only says something inside it changed (those are listed too), so it is skipped when anything
    under it is listed. Deleted paths and the engine's own files are left out. Each root comes with
    whether it was only changed (a changed folder with nothing listed in it had its own mode or
    owner changed, not its contents: it is not copied whole)."""
    changes = [c for c in changes if c.get("Path")]
    listed_inside = {posixpath.dirname(c["Path"]) for c in changes}  # folders with something listed in them
    entries = {c["Path"]: c["Kind"] for c in changes if c["Path"] not in ENGINE_FILES}
    roots: list[tuple[str, bool]] = []
    for path in sorted(p for p, k in entries.items() if k != DELETED):
        if any(entries.get(folder) == ADDED for folder in _ancestors(path)):
            continue  # inside an added folder copied whole
        if entries[path] == MODIFIED and path in listed_inside:
            continue  # a changed folder: what changed in it is listed (and copied) itself
        roots.append((path, entries[path] == MODIFIED))
    return roots


def _ancestors(path: str) -> Iterable[str]:
    while path not in ("/", ""):
        path = posixpath.dirname(path)
        yield path


def copy_layer(site: Site, source: str, target: str) -> int:
    """Copy everything `source`'s writable layer added or changed into `target` (container to
    container, owners and modes kept); how many paths. Its secrets never pass through an image."""
    copied = 0
    for path, changed in layer_roots(site.engine.changes(source)):
        copied += site.engine.copy_path(source, target, path, posixpath.dirname(path) or "/", files_only=changed)
    return copied


def undo_interrupted(site: Site, listed: Iterable[dict] | None = None, now: float | None = None) -> list[str]:
    """Finish what a re-creation cut short left (this user's only): the container the record
    points at gets the experiment's name back, its twin is removed. A twin whose process may still
    run (alive on this boot, or made less than STALE_AFTER ago elsewhere) is left alone. `listed`:
    the instance's containers as just listed (default: listed here). The names it changed."""
    now = time.time() if now is None else now
    undone: list[str] = []
    for container in site.engine.list_managed(site.config.instance) if listed is None else listed:
        match = TWIN.fullmatch((container.get("Names") or ["/"])[0].lstrip("/"))
        if match is None or foreign_owner(container) or _in_progress(match, container, now):
            continue
        label = (container.get("Labels") or {}).get(LABEL_NAME) or ""
        record = site.store.experiment(label) if label else None
        if record is not None and record.container_id == container["Id"]:
            other = site.engine.try_inspect(match["base"])
            if other is not None and other["Id"] != container["Id"]:
                site.engine.remove(other["Id"], force=True)  # the half-made new one
            site.engine.rename(container["Id"], match["base"])
        else:
            site.engine.remove(container["Id"], force=True)  # never the record's own container
        undone.append(label)
    return undone


def _in_progress(match: re.Match[str], container: dict, now: float) -> bool:
    from ptdesk.core.engine.locks import boot_id  # (only where a twin was found)
    if match["boot"] == (boot_id()[:8] or "00000000"):
        return pid_alive(int(match["pid"]))
    return now - float(container.get("Created") or 0) < STALE_AFTER


def _point_record(site: Site, name: str, old_id: str, new_id: str, gpus: tuple[int, ...]) -> None:
    """The record (if it is this container's) follows the new container, with its GPUs."""
    record = site.store.experiment(name) if name else None
    if record is not None and record.container_id == old_id:
        site.store.update_experiment(name, container_id=new_id, gpus=gpus)
