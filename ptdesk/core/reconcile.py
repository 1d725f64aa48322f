"""Bring the store and the engine back in line: run at every start and after every engine reconnect.

Events say what happened while someone was watching; this covers the rest. Records are read
*before* containers are listed, so a launch that finishes in between is never mistaken for a gone
container (its record existed before its container did), and every change re-checks the record
under the store's lock, so several ptdesk processes may reconcile at once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from ptdesk.core import experiments, material
from ptdesk.core.desk import Desk
from ptdesk.core.launch import NAME_RE, OWNER_RE, rollback
from ptdesk.core.models import KINDS, LABEL_GPUS, LABEL_KIND, LABEL_NAME, LABEL_OWNER, LABEL_WORKSPACE
from ptdesk.core.state import ExperimentRecord
from ptdesk.errors import EngineUnavailable, PtdeskError

log = logging.getLogger(__name__)

HOST_KEY_IN_CONTAINER = "/etc/ssh/ssh_host_ed25519_key.pub"
# A launch never legitimately takes longer than ready_timeout plus image checks and create;
# past this a "launching" record is stale even if its launcher PID was reused by another process.
STALE_LAUNCH_MARGIN = 300.0


@dataclass(frozen=True)
class ReconcileReport:
    released: tuple[str, ...] = ()  # records whose container is gone: secrets, port, GPUs freed
    rolled_back: tuple[str, ...] = ()  # launches whose launcher died: container and record removed
    adopted: tuple[str, ...] = ()  # labelled containers without a record, now recorded
    orphans: tuple[str, ...] = ()  # labelled containers ptdesk cannot adopt (`ptdesk rm` removes them)

    @property
    def changed(self) -> bool:
        return bool(self.released or self.rolled_back or self.adopted)

    def to_json(self) -> dict:
        return {"released": list(self.released), "rolled_back": list(self.rolled_back),
                "adopted": list(self.adopted), "orphans": list(self.orphans)}


def launcher_alive(record: ExperimentRecord, timeout: float, now: float | None = None) -> bool:
    """Is the process that is launching this record still at it?"""
    if record.launcher_pid is None:
        return False
    if (now or time.time()) - record.created > timeout + STALE_LAUNCH_MARGIN:
        return False
    if record.launcher_pid == os.getpid():
        return True  # another thread of this process (the dashboard launches in workers)
    try:
        os.kill(record.launcher_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return not _is_zombie(record.launcher_pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def reconcile(desk: Desk) -> ReconcileReport:
    """One pass; raises EngineUnavailable if the engine cannot be listed (callers decide)."""
    store = desk.store
    records = store.experiments()  # before the list: see the module docstring
    containers = desk.engine.list_managed(desk.config.instance)
    by_name = {experiments.container_key(c): c for c in containers}
    released: list[str] = []
    rolled_back: list[str] = []
    adopted: list[str] = []
    orphans: list[str] = []

    for record in records:
        container = by_name.get(record.name)
        if record.status == "launching":
            if launcher_alive(record, desk.config.ready_timeout):
                continue
            container_id = record.container_id or (container or {}).get("Id")
            rollback(desk, record.name, container_id)
            store.audit("rolled-back", record.name, {"launcher_pid": record.launcher_pid}, who="ptdesk-reconcile")
            rolled_back.append(record.name)
            by_name.pop(record.name, None)
            continue
        if container is not None and (not record.container_id or container["Id"] == record.container_id):
            continue
        if experiments.release(desk, record.name, if_container=record.container_id):
            store.audit("released", record.name, {"container": (record.container_id or "")[:12],
                                                  "by": "reconcile"}, who="ptdesk-reconcile")
            released.append(record.name)

    known = {r.name for r in records}
    for name, container in by_name.items():
        if name in known:
            continue
        if _adoptable(container):
            try:
                if _adopt(desk, container):
                    adopted.append(name)
                continue
            except EngineUnavailable:
                raise
            except PtdeskError as exc:  # e.g. it vanished while we looked at it
                log.warning("could not adopt %s: %s", name, exc.message)
        orphans.append(name)
    return ReconcileReport(tuple(released), tuple(rolled_back), tuple(adopted), tuple(orphans))


def _adoptable(container: dict) -> bool:
    labels = container.get("Labels") or {}
    return (labels.get(LABEL_KIND) in KINDS and bool(NAME_RE.match(labels.get(LABEL_NAME) or ""))
            and bool(OWNER_RE.match(labels.get(LABEL_OWNER) or "")))


def _adopt(desk: Desk, container: dict) -> bool:
    """Record a labelled container the store lost; secrets are read back from the container."""
    from ptdesk.core.jupyter import TOKEN_DIR, TOKEN_FILE

    labels = container["Labels"]
    name, kind, cid = labels[LABEL_NAME], labels[LABEL_KIND], container["Id"]
    engine = desk.engine
    host_key: str | None = None
    token: str | None = None
    # Reading through the engine works on running and stopped containers alike.
    if kind == "ssh":
        host_key = engine.read_file(cid, HOST_KEY_IN_CONTAINER).decode().strip() or None
    else:
        token = engine.read_file(cid, f"{TOKEN_DIR}/{TOKEN_FILE}").decode() or None
    port = next((p.get("PublicPort") for p in container.get("Ports") or [] if p.get("PublicPort")), None)
    state = container.get("State") or "exited"
    record = ExperimentRecord(
        name=name, kind=kind, owner=labels[LABEL_OWNER], image=container.get("Image", ""),
        status="running" if state == "running" else "exited", created=float(container.get("Created") or 0),
        container_id=cid, port=port, gpus=tuple(int(g) for g in (labels.get(LABEL_GPUS) or "").split(",") if g),
        workspace=labels.get(LABEL_WORKSPACE), host_public_key=host_key)
    with desk.store.tx() as conn:
        if desk.store.experiment(name) is not None:
            return False  # a launch recorded it meanwhile
        desk.store.insert_experiment(conn, record)
        if token:
            material.write(desk.config, name, TOKEN_FILE, token, 0o600)
    desk.store.audit("adopted", name, {"container": cid[:12], "kind": kind}, who="ptdesk-reconcile")
    return True
