"""The experiment list: the engine's view (one request, labels only) joined with the state store.

Nothing is inspected per container. Every user's ptdesk on a shared engine sees the instance's
containers, but only the one whose store holds a record (or whose user the ptdesk.owner label
names, see reconcile) manages a container: other users' containers are listed read-only
("foreign"), and the operations refuse them (`refuse_foreign`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ptdesk.core.access.ownership import find_container, foreign_owner, instance_containers
from ptdesk.core.base.models import LABEL_GPUS, LABEL_KIND, LABEL_OWNER, Experiment
from ptdesk.core.base.names import container_key
from ptdesk.core.base.text import printable
from ptdesk.core.gpu.ledger import gpus_from_label
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.sharing.gpu_queue import entries, fair_order
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import NotFound

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def _status(container: dict | None, record: ExperimentRecord | None, queued: Mapping[str, int]) -> str:
    if record is not None and record.status == "launching":
        return record.status
    if container is None:
        return "missing"
    position = queued.get(container["Id"])
    if record is not None and record.status == "exited" and container.get("State") == "created":
        return "exited"  # taken out of the GPU queue: stopped as before (made again, never started since)
    return f"queued #{position}" if position else container.get("State") or "unknown"


def _experiment(site: Site, record: ExperimentRecord | None, container: dict | None,
                queued: Mapping[str, int]) -> Experiment:
    """`queued`: container id -> queue position (its status is then `queued #N`)."""
    config = site.config
    labels = (container or {}).get("Labels") or {}
    if record is None:  # labelled container ptdesk has no record of: another user's, or an orphan
        foreign = foreign_owner(container) is not None
        kind = labels.get(LABEL_KIND, "")
        # Its labels are whatever its creator wrote: never printed raw (see ptdesk.core.base.text).
        return Experiment(name=printable(container_key(container)) if container else "?",
                          id=container["Id"] if container else "",
                          kind=kind if kind in REGISTRY else "unknown", owner=printable(labels.get(LABEL_OWNER, "?")),
                          image=printable((container or {}).get("Image", "")), status=_status(container, None, queued),
                          gpus=gpus_from_label(labels.get(LABEL_GPUS)) or (),
                          created=float((container or {}).get("Created", 0)), orphan=not foreign, foreign=foreign,
                          unverified=True)
    access = get_kind(record.kind).access(config, record, config.connect_host)
    return Experiment(
        name=record.name, id=(container or {}).get("Id") or record.container_id or "", kind=record.kind,
        owner=record.owner, image=record.image, status=_status(container, record, queued), gpus=record.gpus,
        created=record.created, workspace=record.workspace, limits=record.limits,
        access=access,
        orphan=container is None and record.status != "launching",
    )


def list_experiments(site: Site, all: bool = True, driver: str | None = None) -> list[Experiment]:
    """Every experiment of this instance (other users' too); with all=False only running ones.
    `driver`: the NVIDIA driver NVML already reported in this process, for the driver warning."""
    containers = instance_containers(site)
    records = {r.name: r for r in site.store.experiments()}
    names = sorted(set(containers) | set(records), key=lambda n: (records[n].created if n in records else 0, n))
    queued = queue_positions(containers.values())
    out = [_experiment(site, records.get(n), containers.get(n), queued) for n in names if n]
    if queued:  # why each waits: asked only while something is queued (holds, GPUs, reservations)
        from ptdesk.core.sharing import queue_view
        why = {e.name: e.reason for e in queue_view.queue(site, containers.values())}
        out = [replace(e, waiting=why.get(e.name)) if e.status.startswith("queued") else e for e in out]
    out = out if all else [e for e in out if e.status == "running"]
    if not out:
        return out  # nothing to mark: the environment's modules are not even imported
    from ptdesk.core.environment.drift import marked
    # The environment column (ptdesk.core.environment.drift), then who is logged in (ptdesk.core.access.sessions).
    return with_logins(marked(site, out, containers, records, driver), records)


def get(site: Site, name: str, driver: str | None = None) -> Experiment:
    record = site.store.experiment(name)
    container = find_container(site, name)
    if record is None and container is None:
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    waits = container is not None and container.get("State") == "created"
    listed = instance_containers(site).values() if waits else ()
    queued = queue_positions(listed)
    found = _experiment(site, record, container, queued)
    from ptdesk.core.environment.drift import marked
    if found.status.startswith("queued"):
        from ptdesk.core.sharing import queue_view
        found = replace(found, waiting=next((e.reason for e in queue_view.queue(site, listed) if e.name == name), None))
    return with_logins(marked(site, [found], {name: container} if container else {},
                              {name: record} if record else {}, driver), {name: record} if record else {})[0]


def with_logins(experiments: list[Experiment], records: dict[str, ExperimentRecord]) -> list[Experiment]:
    """Each running SSH experiment of this home with who is logged in now: one pass over /proc
    for all of them (no exec); the owner's account is shown as the owner."""
    ours = {e.id: e for e in experiments if e.name in records and e.status == "running" and e.id
            and get_kind(e.kind).grants_logins}
    if not ours:
        return experiments
    from ptdesk.core.access import sessions  # (imported by a listing with logins to show, only)
    from ptdesk.core.access.authorized_keys import CONTAINER_USER
    found = sessions.scan(ours)

    def named(e: Experiment) -> Experiment:
        accounts = found.get(e.id)
        if accounts is None:
            return e
        people = (e.owner if a == CONTAINER_USER else a for a in accounts)
        return replace(e, logged_in=tuple(dict.fromkeys(people)))

    return [named(e) if e.id in ours else e for e in experiments]



def queue_positions(containers: Iterable[dict]) -> dict[str, int]:
    """Container id -> its position in the GPU queue, from the one listing already made."""
    return {e.container_id: e.position for e in fair_order(entries(containers))}
