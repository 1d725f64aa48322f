"""Operations on existing experiments: list, look up, stop, start, remove, read logs.

The list is the engine's view (one request, labels only) joined with the state store's records;
nothing is inspected per container. Every user's ptdesk on a shared engine sees the instance's
containers, but only the one whose store holds a record (or whose user the ptdesk.owner label
names, see reconcile) manages a container: other users' containers are listed read-only
("foreign") and stop/start/rm refuse them.
"""

from __future__ import annotations

from collections.abc import Iterator

from ptdesk.core import experiment_files
from ptdesk.core.engine import translated_errors
from ptdesk.core.kinds import get_kind
from ptdesk.core.launch import is_running, write_access_files
from ptdesk.core.ledger import gpus_from_label
from ptdesk.core.models import LABEL_GPUS, LABEL_KIND, LABEL_OWNER, Experiment
from ptdesk.core.spec import OWNER_RE, container_key, container_name, current_user, instance_containers
from ptdesk.core.state import ExperimentRecord
from ptdesk.core.workstation import Workstation
from ptdesk.errors import Conflict, NotFound


def _status(container: dict | None, record: ExperimentRecord | None) -> str:
    if record is not None and record.status == "launching":
        return record.status
    if container is None:
        return "missing"
    return container.get("State") or "unknown"


def _experiment(ws: Workstation, record: ExperimentRecord | None, container: dict | None) -> Experiment:
    config = ws.config
    labels = (container or {}).get("Labels") or {}
    if record is None:  # labelled container ptdesk has no record of: another user's, or an orphan
        foreign = foreign_owner(container) is not None
        return Experiment(name=container_key(container) if container else "?", id=container["Id"] if container else "",
                          kind=labels.get(LABEL_KIND, "ssh"), owner=labels.get(LABEL_OWNER, "?"),
                          image=(container or {}).get("Image", ""), status=_status(container, None),
                          gpus=gpus_from_label(labels.get(LABEL_GPUS)) or (),
                          created=float((container or {}).get("Created", 0)), orphan=not foreign, foreign=foreign)
    kind = get_kind(record.kind)
    access = kind.access(config, record, config.connect_host)
    return Experiment(
        name=record.name, id=(container or {}).get("Id") or record.container_id or "", kind=record.kind,  # type: ignore[arg-type]
        owner=record.owner, image=record.image, status=_status(container, record), gpus=record.gpus,
        created=record.created, workspace=record.workspace, limits=record.limits,
        ssh=access if record.kind == "ssh" else None,  # type: ignore[arg-type]
        jupyter=access if record.kind == "jupyter" else None,  # type: ignore[arg-type]
        orphan=container is None and record.status != "launching",
    )


def list_experiments(ws: Workstation, all: bool = True) -> list[Experiment]:
    """Every experiment of this instance (other users' too); with all=False only running ones."""
    containers = instance_containers(ws)
    records = {r.name: r for r in ws.store.experiments()}
    names = sorted(set(containers) | set(records), key=lambda n: (records[n].created if n in records else 0, n))
    out = [_experiment(ws, records.get(n), containers.get(n)) for n in names if n]
    return out if all else [e for e in out if e.status == "running"]


def get(ws: Workstation, name: str) -> Experiment:
    record = ws.store.experiment(name)
    container = _find_container(ws, name)
    if record is None and container is None:
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    return _experiment(ws, record, container)


def _find_container(ws: Workstation, name: str) -> dict | None:
    """The engine's list entry for an experiment (same shape list_managed returns)."""
    return instance_containers(ws).get(name)


def foreign_owner(container: dict | None) -> str | None:
    """The other user whose ptdesk made this container; None when it is this user's, or when no
    valid owner label says whose it is (an orphan, which this user may clean up)."""
    owner = ((container or {}).get("Labels") or {}).get(LABEL_OWNER) or ""
    return owner if OWNER_RE.match(owner) and owner != current_user() else None


def _refuse_foreign(name: str, record: ExperimentRecord | None, container: dict | None,
                    hint: str | None = None) -> None:
    """Another user's container is theirs to change: their store holds its keys, token and grants."""
    owner = foreign_owner(container) if record is None else None
    if owner is not None:
        raise Conflict(f"{name!r} belongs to {owner}'s ptdesk.", hint or f"Ask {owner}, or use docker directly.")


def refuse_if_foreign(ws: Workstation, name: str) -> None:
    """Conflict, saying whose it is, when `name` is another user's container (for commands such as
    grant that look only at this store and would otherwise just say "no such experiment")."""
    _refuse_foreign(name, ws.store.experiment(name), _find_container(ws, name))


def _container_ref(ws: Workstation, name: str, mine: bool = False) -> str:
    """The container id of an experiment; with mine=True, refused when it is another user's."""
    record = ws.store.experiment(name)
    container = _find_container(ws, name)
    if container is None:
        if record is None:
            raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
        raise NotFound(f"The container of {name!r} is gone.", f"Clean up its records with: ptdesk rm {name}")
    if mine:
        _refuse_foreign(name, record, container)
    return container["Id"]


def stop(ws: Workstation, name: str, timeout: int = 10) -> Experiment:
    ws.engine.stop(_container_ref(ws, name, mine=True), timeout=timeout)
    ws.store.update_experiment(name, status="exited")
    ws.store.audit("stop", name)
    return get(ws, name)


def start(ws: Workstation, name: str) -> Experiment:
    """Start a stopped experiment and wait until it is ready again (its port may change)."""
    container_id = _container_ref(ws, name, mine=True)
    record = ws.store.experiment(name)
    engine = ws.engine
    engine.start(container_id)
    if record is not None:
        kind = get_kind(record.kind)
        bound = engine.published_port(container_id, kind.container_port)
        if bound:
            ws.store.update_experiment(name, port=bound[1], status="running")
            record = ws.store.experiment(name)
            assert record is not None
            write_access_files(ws.config, record)  # the port may have changed
            kind.wait_ready(ws.config, record, ws.config.connect_host, bound[1], ws.config.ready_timeout,
                            is_alive=lambda: is_running(ws, container_id))
            if record.kind == "ssh":  # key rotations that waited for this container to come back
                from ptdesk.core.collab import finish_pending

                finish_pending(ws, name)
    ws.store.audit("start", name)
    return get(ws, name)


def remove(ws: Workstation, name: str, force: bool = False) -> None:
    """Remove the container and everything it was given; the workspace and owner key stay.

    Another user's container is refused, except with force: a team lead may clean up after someone
    (anyone in the docker group could anyway). Its owner's ptdesk releases their records of it at
    its next reconcile, as for any container removed behind its back.
    """
    record = ws.store.experiment(name)
    container = _find_container(ws, name)
    if record is None and container is None:
        # Nothing under that name; a container with the computed name but other labels is not ours.
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    if not force:
        _refuse_foreign(name, record, container,
                        hint=f"Ask its owner; to clean it up anyway: ptdesk rm --force {name}")
    if container is not None:
        if container.get("State") == "running" and not force:
            raise Conflict(f"{name!r} is running.", f"Stop it first (ptdesk stop {name}) or use --force.")
        ws.engine.remove(container["Id"], force=True)
    release(ws, name)
    ws.store.audit("remove", name, {"container": (container or {}).get("Id", "")[:12]})


def release(ws: Workstation, name: str, if_container: str | None = None) -> bool:
    """Free what a gone container held: host-side secrets, the record (GPUs, port, grants).

    With if_container, only if the record still belongs to that container: a late event or a
    reconcile pass must not release a newer experiment that reused the name. Checked and done under
    the store's lock, secrets first, so a launch reusing the name cannot slip in between.
    """
    with ws.store.tx() as conn:
        if if_container is not None:
            row = conn.execute("SELECT container_id FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None or row["container_id"] != if_container:
                return False
        experiment_files.discard(ws.config, name)
        conn.execute("DELETE FROM experiments WHERE name = ?", (name,))
    return True


def logs(ws: Workstation, name: str, tail: int | str = 100, follow: bool = False) -> Iterator[str]:
    """Log lines (decoded, without newline); the generator closes its stream when closed."""
    container_id = _container_ref(ws, name)
    stream = ws.engine.logs(container_id, tail=tail, follow=follow)
    pending = b""
    try:
        # Frames are read from the engine's socket while iterating: a connection cut mid-stream is
        # engine trouble like any other, said in one sentence.
        with translated_errors(f"Reading logs of {name}"):
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


__all__ = ["container_key", "container_name", "foreign_owner", "get", "list_experiments", "logs", "refuse_if_foreign",
           "release", "remove", "start", "stop"]
