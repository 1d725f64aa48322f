"""Operations on existing experiments: stop, start, remove (and release), read logs.

Only this user's experiments are changed: another user's container is refused (ptdesk.core.experiments.listing
says whose), except `remove --force`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.access import ownership, ssh_config
from ptdesk.core.base.models import Experiment
from ptdesk.core.collaborators import rotation
from ptdesk.core.engine.errors import translated_errors
from ptdesk.core.experiments import listing
from ptdesk.core.host import workspace
from ptdesk.core.kinds import get_kind
from ptdesk.core.sharing import gpu_start
from ptdesk.core.sharing.gpu_queue import QUEUED
from ptdesk.core.store import experiment_files
from ptdesk.errors import Conflict, NotFound

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def _container_ref(site: Site, name: str, mine: bool = False) -> str:
    """The container id of an experiment; with mine=True, refused when it is another user's."""
    record = site.store.experiment(name)
    container = ownership.find_container(site, name)
    if container is None:
        if record is None:
            raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
        raise NotFound(f"The container of {name!r} is gone.", f"Clean up its records with: ptdesk rm {name}")
    if mine:
        ownership.refuse_foreign(name, record, container)
    return container["Id"]


def stop(site: Site, name: str, timeout: int = 10) -> Experiment:
    container_id = _container_ref(site, name, mine=True)
    was_running = site.engine.is_running(container_id)
    site.engine.stop(container_id, timeout=timeout)
    site.store.update_experiment(name, status="exited")
    if was_running:  # the audit log records what changed, not every press of the key
        site.store.audit("stop", name)
    return listing.get(site, name)


def start(site: Site, name: str, gpus: str | None = None, queue: bool = False) -> Experiment:
    """Start a stopped experiment and wait until it is ready again (its port may change).

    Its GPUs: the same ones if nobody took them after its hold, else `gpus` (a --gpus value; it is
    re-created on them, ptdesk.core.sharing.gpu_start) or the queue."""
    container_id = _container_ref(site, name, mine=True)
    record = site.store.experiment(name)
    engine = site.engine
    was_running = engine.is_running(container_id)
    if was_running and (gpus is not None or queue):
        raise Conflict(f"{name!r} is running: its GPUs change only when it starts.",
                       f"Stop it first (ptdesk stop {name}), then start it with --gpus.")
    if record is not None and record.status == QUEUED:
        raise Conflict(f"{name!r} waits in the GPU queue: it starts by itself when GPUs free.",
                       f"See why it waits: ptdesk queue; to take it out (it stays stopped): ptdesk queue cancel {name}")
    if not was_running:
        _recheck_workspace(site, container_id)
        container_id = gpu_start.start_container(site, name, container_id, gpus, queue)
        record = site.store.experiment(name)
    if record is not None and record.status == QUEUED:
        return listing.get(site, name)  # filed in the queue: admission starts it (`queued #N`, and why)
    if record is not None:
        kind = get_kind(record.kind)
        bound = engine.published_port(container_id, kind.container_port)
        if bound:
            site.store.update_experiment(name, port=bound[1], status="running")
            record = site.store.experiment(name)
            assert record is not None
            kind.after_start(site.config, record)  # the port may have changed
            kind.wait_ready(site.config, record, site.config.connect_host, bound[1], site.config.ready_timeout,
                            is_alive=lambda: engine.is_running(container_id))
            rotation.finish_pending(site, name)  # key rotations that waited for this container to run
    if not was_running:
        site.store.audit("start", name)
    return listing.get(site, name)


def _recheck_workspace(site: Site, container_id: str) -> None:
    """The engine resolves a bind's source again at every start: check the folder it will bind now
    by the launch's rule, so one swapped for a link (or made unsafe) since is refused, not mounted."""
    mounts = site.engine.inspect(container_id).get("Mounts") or []
    source = next((m.get("Source") for m in mounts if m.get("Destination") == workspace.MOUNT
                   and m.get("Type") == "bind"), None)
    if source:
        workspace.check(site.config, Path(source), engine_root=workspace.docker_root(site.engine), recorded=True)


def remove(site: Site, name: str, force: bool = False) -> None:
    """Remove the container and everything it was given; the workspace and owner key stay.

    Another user's container is refused, except with force: a team lead may clean up after someone
    (anyone in the docker group could anyway). Its owner's ptdesk releases their records of it at
    its next reconcile, as for any container removed behind its back.
    """
    record = site.store.experiment(name)
    container = ownership.find_container(site, name)
    if record is None and container is None:
        # Nothing under that name; a container with the computed name but other labels is not ours.
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    if not force:
        ownership.refuse_foreign(name, record, container,
                        hint=f"Ask its owner; to clean it up anyway: ptdesk rm --force {name}")
    if container is not None:
        if container.get("State") == "running" and not force:
            raise Conflict(f"{name!r} is running.", f"Stop it first (ptdesk stop {name}) or use --force.")
        site.engine.remove(container["Id"], force=True)
    release(site, name)
    site.store.audit("remove", name, {"container": (container or {}).get("Id", "")[:12]})


def release(site: Site, name: str, if_container: str | None = None) -> bool:
    """Free what a gone container held: host-side secrets, the record (GPUs, port, grants).

    With if_container, only if the record still belongs to that container: a late event or a
    reconcile pass must not release a newer experiment that reused the name. Checked and done under
    the store's lock, secrets first, so a launch reusing the name cannot slip in between.
    """
    released = site.store.delete_experiment_if(name, None if if_container is None else {"container_id": if_container},
                                             first=lambda: experiment_files.discard(site.config, name))
    if released:
        ssh_config.refresh_quietly(site.config)  # its Host block goes with it
    return released


def logs(site: Site, name: str, tail: int | str = 100, follow: bool = False) -> Iterator[str]:
    """Log lines (decoded, without newline); the generator closes its stream when closed."""
    container_id = _container_ref(site, name)
    stream = site.engine.logs(container_id, tail=tail, follow=follow)
    pending = b""
    try:
        # Frames are read from the engine's socket while iterating: a connection cut mid-stream is
        # engine trouble like any other, said in one sentence.
        with translated_errors(f"Reading logs of {name}", site.engine.where):
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace").rstrip("\r")
        if pending:
            yield pending.decode(errors="replace")
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
