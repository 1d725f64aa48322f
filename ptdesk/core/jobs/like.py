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
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.environment import drift
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
    fingerprint = None
    with contextlib.suppress(PtdeskError):  # a probe that cannot run leaves the image's fingerprint
        fingerprint = drift.environment(site, name).live_fingerprint
    return Like(found["Id"], found["Image"], fingerprint or record.env_fingerprint)


def copy_environment(site: Site, source: str, target: str) -> int:
    """Copy the experiment's added and changed files (but its secrets) into the job's container."""
    copied = 0
    for path, changed in layer_roots(site.engine.changes(source)):
        if any(path == skip or path.startswith(skip + "/") for skip in NOT_COPIED):
            continue
        copied += site.engine.copy_path(source, target, path, posixpath.dirname(path) or "/", files_only=changed)
    return copied
