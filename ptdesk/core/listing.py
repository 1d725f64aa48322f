"""The experiment list: the engine's view (one request, labels only) joined with the state store.

Nothing is inspected per container. Every user's ptdesk on a shared engine sees the instance's
containers, but only the one whose store holds a record (or whose user the ptdesk.owner label
names, see reconcile) manages a container: other users' containers are listed read-only
("foreign"), and the operations refuse them (`refuse_foreign`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.environment import marked
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.ledger import gpus_from_label
from ptdesk.core.models import LABEL_GPUS, LABEL_KIND, LABEL_OWNER, Experiment
from ptdesk.core.spec import OWNER_RE, container_key, current_user, instance_containers
from ptdesk.core.state import ExperimentRecord
from ptdesk.errors import Conflict, NotFound

if TYPE_CHECKING:
    from ptdesk.core.workstation import Workstation


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
        kind = labels.get(LABEL_KIND, "")
        return Experiment(name=container_key(container) if container else "?", id=container["Id"] if container else "",
                          kind=kind if kind in REGISTRY else "unknown", owner=labels.get(LABEL_OWNER, "?"),
                          image=(container or {}).get("Image", ""), status=_status(container, None),
                          gpus=gpus_from_label(labels.get(LABEL_GPUS)) or (),
                          created=float((container or {}).get("Created", 0)), orphan=not foreign, foreign=foreign,
                          unverified=True)
    access = get_kind(record.kind).access(config, record, config.connect_host)
    return Experiment(
        name=record.name, id=(container or {}).get("Id") or record.container_id or "", kind=record.kind,
        owner=record.owner, image=record.image, status=_status(container, record), gpus=record.gpus,
        created=record.created, workspace=record.workspace, limits=record.limits,
        access=access,
        orphan=container is None and record.status != "launching",
    )


def list_experiments(ws: Workstation, all: bool = True) -> list[Experiment]:
    """Every experiment of this instance (other users' too); with all=False only running ones."""
    containers = instance_containers(ws)
    records = {r.name: r for r in ws.store.experiments()}
    names = sorted(set(containers) | set(records), key=lambda n: (records[n].created if n in records else 0, n))
    out = [_experiment(ws, records.get(n), containers.get(n)) for n in names if n]
    out = out if all else [e for e in out if e.status == "running"]
    return marked(ws, out, containers, records)  # the environment column (ptdesk.core.environment)


def get(ws: Workstation, name: str) -> Experiment:
    record = ws.store.experiment(name)
    container = find_container(ws, name)
    if record is None and container is None:
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    return marked(ws, [_experiment(ws, record, container)], {name: container} if container else {},
                  {name: record} if record else {})[0]


def find_container(ws: Workstation, name: str) -> dict | None:
    """The engine's list entry for an experiment (same shape list_managed returns)."""
    return instance_containers(ws).get(name)


def foreign_owner(container: dict | None) -> str | None:
    """The other user whose ptdesk made this container; None when it is this user's, or when no
    valid owner label says whose it is (an orphan, which this user may clean up)."""
    owner = ((container or {}).get("Labels") or {}).get(LABEL_OWNER) or ""
    return owner if OWNER_RE.match(owner) and owner != current_user() else None


def refuse_foreign(name: str, record: ExperimentRecord | None, container: dict | None,
                    hint: str | None = None) -> None:
    """Another user's container is theirs to change: their store holds its keys, token and grants."""
    owner = foreign_owner(container) if record is None else None
    if owner is not None:
        raise Conflict(f"{name!r} belongs to {owner}'s ptdesk.", hint or f"Ask {owner}, or use docker directly.")


def refuse_if_foreign(ws: Workstation, name: str) -> None:
    """Conflict, saying whose it is, when `name` is another user's container (for commands such as
    grant that look only at this store and would otherwise just say "no such experiment")."""
    refuse_foreign(name, ws.store.experiment(name), find_container(ws, name))
