"""`ptdesk run --like EXPERIMENT`: a job in that experiment's environment as it is now, with what
was pip-installed inside it since launch.

The job's container is made from the experiment's image (by id) and, before it starts, gets a copy
of the experiment's writable layer (what `docker diff` lists: installs in the home, /usr/local, ...)
read with the engine's archive API — the experiment is only read, never paused, changed or
re-created. Not `docker commit`: that would write the experiment's secrets (its SSH host key, its
authorized keys, a Jupyter token) into an image layer, which ptdesk never does; for the same reason
those folders are left out of the copy.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.environment import drift
from ptdesk.core.environment.recorded import Environment
from ptdesk.core.sharing.recreate import layer_roots
from ptdesk.errors import InvalidInput, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

# Where ptdesk's kinds place secrets and per-container configuration: never copied into a job.
NOT_COPIED = ("/etc/ssh", "/etc/ptdesk", "/etc/profile.d/ptdesk-workspace.sh", "/run", "/tmp")


@dataclass(frozen=True)
class Like:
    container_id: str
    image: str  # the image id the experiment runs
    fingerprint: str | None  # its live environment's
    environment: Environment | None = None  # read live now (kept on the job: env diff after its end)


def resolve(site: Site, name: str) -> Like:
    """The experiment `name` of this home to copy the environment of; one sentence otherwise."""
    record = site.store.experiment(name)
    if record is None or record.kind == "job" or not record.container_id:
        raise NotFound(f"No experiment named {name!r} to run --like.", "See your experiments with: ptdesk ls")
    found = site.engine.try_inspect(record.container_id)
    if found is None:
        raise NotFound(f"Experiment {name!r} has no container any more.", "See your experiments with: ptdesk ls")
    if record.status == "queued":
        raise InvalidInput(f"Experiment {name!r} waits in the GPU queue: it has no environment to copy yet.",
                           "Run --like it once it has started.")
    fingerprint, live = None, None
    with contextlib.suppress(PtdeskError):  # a probe that cannot run leaves the image's fingerprint
        now = drift.environment(site, name)
        fingerprint, live = now.live_fingerprint, now.live
    return Like(found["Id"], found["Image"], fingerprint or record.env_fingerprint, live)


def copy_environment(site: Site, source: str, target: str) -> int:
    """Copy the experiment's added and changed files (but its secrets) into the job's container,
    and what its tmpfs homes hold (Jupyter's home is one: `pip install --user` lands there)."""
    copied = 0
    for path, changed in layer_roots(site.engine.changes(source)):
        if _skipped(path):
            continue
        copied += site.engine.copy_path(source, target, path, posixpath.dirname(path) or "/", files_only=changed)
    tmpfs = (site.engine.inspect(source).get("HostConfig") or {}).get("Tmpfs") or {}
    for path, options in tmpfs.items():
        if not _skipped(path):
            copied += _copy_tmpfs(site, source, target, path, options)
    return copied


def _skipped(path: str) -> bool:
    return any(path == skip or path.startswith(skip + "/") for skip in NOT_COPIED)


def _copy_tmpfs(site: Site, source: str, target: str, path: str, options: str) -> int:
    """A tmpfs is not in the engine's archive view: tar it inside the (running) experiment, as the
    account that owns it (what it can read is that person's own), and place it in the job."""
    owner = dict(o.split("=", 1) for o in options.split(",") if "=" in o)
    user = f"{owner.get('uid', '0')}:{owner.get('gid', '0')}"
    rc, data = site.engine.exec(source, ["sh", "-c", 'tar -C "$1" -cf - . 2>/dev/null', "sh", path], user=user)
    if rc != 0 or not data:
        return 0
    site.engine.put_archive(target, path, io.BytesIO(data))
    return 1
