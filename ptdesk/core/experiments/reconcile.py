"""Bring the store and the engine back in line: run at every start and after every engine reconnect.

Events say what happened while someone was watching; this covers the rest. Records are read
*before* containers are listed, so a launch that finishes in between is never mistaken for a gone
container (its record existed before its container did), and every change re-checks the record
under the store's lock, so several ptdesk processes may reconcile at once.

Several users share one engine, each with their own store: only containers whose ptdesk.owner
label is this user are adopted. Other users' containers are theirs (their store holds the keys,
token and grants): never adopted, never called orphans, never changed here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.access import ownership
from ptdesk.core.base.models import LABEL_GPUS, LABEL_KIND, LABEL_NAME, LABEL_OWNER, LABEL_WORKSPACE
from ptdesk.core.base.names import NAME_RE, OWNER_RE, container_key
from ptdesk.core.base.text import printable
from ptdesk.core.collaborators import expiry
from ptdesk.core.gpu.ledger import gpus_from_label
from ptdesk.core.host.processes import pid_alive
from ptdesk.core.jobs import JOB_KIND
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.sharing import gpu_queue, recreate
from ptdesk.core.sharing.gpu_queue import QUEUED
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import CollaboratorRecord, ExperimentRecord
from ptdesk.errors import EngineUnavailable, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.access.authorized_keys import GrantedKey
    from ptdesk.core.kinds.base import Kind, Recovered
    from ptdesk.core.site import Site

# What only a pass with something to do needs (releasing, rolling back, admitting, adopting) is
# imported where it is done: every `ptdesk ls` reconciles first, and mostly nothing has changed.

log = logging.getLogger(__name__)

# A launch never legitimately takes longer than ready_timeout plus image checks and create;
# past this a "launching" record is stale even if its launcher PID was reused by another process.
STALE_LAUNCH_MARGIN = 300.0
ADMIT_LOCK_WAIT = 2.0  # seconds a reconcile waits for the GPU lock to admit queued requests


@dataclass(frozen=True)
class ReconcileReport:
    released: tuple[str, ...] = ()  # records whose container is gone: secrets, port, GPUs freed
    rolled_back: tuple[str, ...] = ()  # launches whose launcher died: container and record removed
    adopted: tuple[str, ...] = ()  # containers this home sealed whose record was lost, now recorded
    # Labelled as this user's, but not sealed by this home (forged, or made elsewhere): listed
    # read-only, given nothing — no key, no secret read, no GPU booked, no connect line.
    unverified: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()  # this user's (or nobody's) containers it cannot adopt (`ptdesk rm` removes them)
    # Expired collaborators whose processes were ended (ptdesk.core.collaborators.expiry): "person in experiment: N".
    ended: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.released or self.rolled_back or self.adopted)

    def to_json(self) -> dict:
        out = {"released": list(self.released), "rolled_back": list(self.rolled_back),
               "adopted": list(self.adopted), "orphans": list(self.orphans), "unverified": list(self.unverified)}
        if self.ended:
            out["ended"] = list(self.ended)
        return out


def launcher_alive(record: ExperimentRecord, timeout: float, now: float | None = None) -> bool:
    """Is the process that is launching this record still at it?"""
    if record.launcher_pid is None:
        return False
    if (now or time.time()) - record.created > timeout + STALE_LAUNCH_MARGIN:
        return False
    if record.launcher_pid == os.getpid():
        return True  # another thread of this process (the dashboard launches in workers)
    return pid_alive(record.launcher_pid)


def reconcile(site: Site) -> ReconcileReport:
    """One pass; raises EngineUnavailable if the engine cannot be listed (callers decide)."""
    records, listed = _records_then_containers(site)
    by_name = {container_key(c): c for c in listed}
    # A container being re-created (ptdesk.core.sharing.recreate) has a twin of its name for a moment: the
    # record's own container, whatever its name now, means it is not gone.
    listed_ids = {c["Id"] for c in listed}
    released: list[str] = []
    rolled_back: list[str] = []
    adopted: list[str] = []
    orphans: list[str] = []
    unverified: list[str] = []

    for record in records:
        container = by_name.get(record.name)
        if record.status == "launching":
            if launcher_alive(record, site.config.ready_timeout):
                continue
            if _roll_back(site, record, container):
                rolled_back.append(record.name)
            by_name.pop(record.name, None)
            continue
        if container is not None and (not record.container_id or container["Id"] == record.container_id):
            continue
        if record.container_id in listed_ids:
            continue
        if record.status == QUEUED and _followed(site, record, listed):
            continue  # admitted by someone's ptdesk while this one looked away: it runs now
        if _release(site, record) and record.kind != JOB_KIND:
            released.append(record.name)  # a job's container going is its ordinary end: kept in its record

    known = {r.name for r in records}
    for name, container in by_name.items():
        if name in known or ownership.foreign_owner(container):
            continue  # recorded, or another user's: theirs to adopt, not an orphan of ours
        if _adoptable(container):
            try:
                outcome = _adopt(site, container)
                if outcome == "adopted":
                    adopted.append(name)
                elif outcome == "unverified":
                    unverified.append(name)
                continue
            except EngineUnavailable:
                raise
            except PtdeskError as exc:  # e.g. it vanished while we looked at it, or holds garbage
                log.warning("could not adopt %s: %s", name, exc.message)
        orphans.append(printable(name))  # any engine user's label: printed by reconcile and watch
    _admit_quietly(site, listed)
    ended = [f"{e.person} in {e.experiment}: {e.count} process(es)" for e in expiry.end_revoked(site) if e.pids]
    return ReconcileReport(released=tuple(released), rolled_back=tuple(rolled_back), adopted=tuple(adopted),
                           orphans=tuple(orphans), unverified=tuple(unverified), ended=tuple(ended))


def _records_then_containers(site: Site) -> tuple[list[ExperimentRecord], list[dict]]:
    """The records, then the instance's containers (in that order: see the module docstring).

    An interrupted re-creation and ended jobs are cleaned up from a first listing; where that may
    have changed something, the records are read and the containers listed again. A pass with
    neither asks the engine once."""
    store = site.store
    records = store.experiments()
    listed = site.engine.list_managed(site.config.instance)
    if recreate.undo_interrupted(site, listed):  # a re-creation cut short: the record's container keeps the name
        records, listed = store.experiments(), site.engine.list_managed(site.config.instance)
    if any(r.kind == JOB_KIND for r in records):  # jobs that ended: kept, their containers gone
        from ptdesk.core.jobs import ending
        ending.collect(site, listed)
        records, listed = store.experiments(), site.engine.list_managed(site.config.instance)
    return records, listed


def _release(site: Site, record: ExperimentRecord) -> bool:
    """Free what a gone container held (secrets, port, GPUs); False if another pass did already."""
    from ptdesk.core.experiments import operations
    if not operations.release(site, record.name, if_container=record.container_id):
        return False
    site.store.audit("released", record.name, {"container": (record.container_id or "")[:12], "by": "reconcile"},
                     who="ptdesk-reconcile")
    return True


def _followed(site: Site, record: ExperimentRecord, listed: list[dict]) -> bool:
    from ptdesk.core.sharing import admission
    return admission.follow(site, record, listed)


def _admit_quietly(site: Site, listed: Iterable[dict]) -> None:
    """Every ptdesk that reconciles admits the queue's head when GPUs are free (the box's service
    does it too); a failed round is the next one's to retry, never this pass's failure."""
    if not gpu_queue.entries(listed):
        return
    from ptdesk.core.sharing import admission
    try:
        # A command must not wait long behind someone's launch: the next round (or the box's
        # service) admits if the lock is busy now.
        admission.admit(site, wait=ADMIT_LOCK_WAIT)
    except EngineUnavailable:
        raise
    except PtdeskError as exc:
        log.warning("admitting queued requests: %s", exc.message)


def _roll_back(site: Site, record: ExperimentRecord, container: dict | None) -> bool:
    """Undo a launch whose launcher died, from `record` as read at the start of the pass.

    launch.rollback does it only if the store still holds that very launch: another pass may have
    rolled it back already and the user launched the name again since. The listed container is
    the launch's only if its owner label says so (the launcher may have died before recording
    its id); a container is never removed by name.
    """
    from ptdesk.core.experiments.launch import rollback

    labels = (container or {}).get("Labels") or {}
    container_id = record.container_id or (container["Id"] if container and
                                           labels.get(LABEL_OWNER) == record.owner else None)
    if not rollback(site, record, container_id):
        return False
    site.store.audit("rolled-back", record.name, {"launcher_pid": record.launcher_pid}, who="ptdesk-reconcile")
    return True


def _adoptable(container: dict) -> bool:
    """Labels complete and well-formed (a bad GPU label could hide a reservation: not adopted)."""
    labels = container.get("Labels") or {}
    return (labels.get(LABEL_KIND) in REGISTRY and bool(NAME_RE.fullmatch(labels.get(LABEL_NAME) or ""))
            and bool(OWNER_RE.fullmatch(labels.get(LABEL_OWNER) or ""))
            and gpus_from_label(labels.get(LABEL_GPUS)) is not None)


def _adopt(site: Site, container: dict) -> str:
    """Record a container of this user's that the store lost — only if this home's seal proves it
    made it ("unverified" otherwise). Its kind reads the secrets back from the container (running
    or stopped); anything unreadable in them makes it an orphan (a PtdeskError). Returns
    "adopted", "unverified", or "recorded" when a launch recorded it meanwhile."""
    labels = container["Labels"]
    name, kind, cid = labels[LABEL_NAME], get_kind(labels[LABEL_KIND]), container["Id"]
    if not _sealed_here(site, kind, cid, labels):
        # Said by `doctor` and marked in `ls` (unverified), not on every command's stderr.
        log.debug("not adopting %s: its labels are not sealed by this ptdesk home", name)
        return "unverified"
    recovered = kind.read_back(site, cid, labels)
    port = next((p.get("PublicPort") for p in container.get("Ports") or [] if p.get("PublicPort")), None)
    state = container.get("State") or "exited"
    record = ExperimentRecord(
        name=name, kind=kind.name, owner=labels[LABEL_OWNER], image=container.get("Image", ""),
        status="running" if state == "running" else "exited", created=float(container.get("Created") or 0),
        container_id=cid, port=port, gpus=gpus_from_label(labels.get(LABEL_GPUS)) or (),
        workspace=labels.get(LABEL_WORKSPACE), host_public_key=recovered.host_public_key,
        extra_keys=recovered.extra_keys)
    with site.store.tx() as conn:
        if site.store.experiment(name) is not None:
            return "recorded"  # a launch recorded it meanwhile
        site.store.insert_experiment(conn, record)
        for filename, text, mode in recovered.files:
            experiment_files.write(site.config, name, filename, text, mode)
        kind.after_start(site.config, record)
    site.store.audit("adopted", name, {"container": cid[:12], "kind": kind.name}, who="ptdesk-reconcile")
    _restore_collaborators(site, name, recovered)
    if kind.grants_logins:
        _authorize_this_owner_key(site, name)
    return "adopted"


def _restore_collaborators(site: Site, experiment: str, recovered: Recovered) -> None:
    """Collaborator keys found in an adopted container come back as collaborators with their grant
    (the key folder ptdesk made for them, if it is still there, as their identity); a key marked
    for someone this store knows with another key is dropped and said so. Either way the next
    render lists only what the store holds: nothing invisible stays."""
    from ptdesk.core.base import keys
    store = site.store
    for found in recovered.collaborators:
        fingerprint = keys.fingerprint(found.public_line)
        person = store.collaborator(found.collaborator)
        if person is None:
            person = _recreate_collaborator(site, found, fingerprint, dict(recovered.accounts))
        if fingerprint not in (person.fingerprint, person.previous_fingerprint):
            _dropped(site, experiment, f"{fingerprint} (marked for {found.collaborator}, whose key is another now)")
            continue
        if not store.grants(collaborator=person.name, experiment=experiment):
            store.put_grant(person.name, experiment, (fingerprint,), pending=False)
        store.audit("collab-restored", experiment, {"collaborator": person.name, "fingerprint": fingerprint},
                    who="ptdesk-reconcile")
    for why in recovered.dropped:
        _dropped(site, experiment, why)


def _recreate_collaborator(site: Site, found: GrantedKey, fingerprint: str,
                           uids: dict[str, int]) -> CollaboratorRecord:
    from ptdesk.core.access import accounts
    from ptdesk.core.base import keys
    from ptdesk.core.collaborators.grants import PRIVATE, key_dir

    private = key_dir(site.config, found.collaborator) / PRIVATE
    try:
        ours = keys.fingerprint(keys.public_line_of(private)) == fingerprint
    except (OSError, PtdeskError):
        ours = False
    # The uid their account (and their files) has, unless this store gave it to someone else.
    first, last = accounts.uid_range(site.config.uid)
    uid = uids.get(found.collaborator)
    if uid is not None and not (first <= uid <= last and uid not in site.store.account_map()):
        uid = None
    person = CollaboratorRecord(name=found.collaborator, public_key=found.public_line, fingerprint=fingerprint,
                                created=time.time(), identity_file=str(private) if ours else None,
                                expires=found.expires, uid=uid)
    site.store.insert_collaborator(person)
    return person


def _dropped(site: Site, experiment: str, why: str) -> None:
    log.warning("adopting %s: a key in its authorized_keys was dropped: %s", experiment, why)
    site.store.audit("adopt-dropped-key", experiment, {"key": why}, who="ptdesk-reconcile")


def _sealed_here(site: Site, kind: Kind, container_id: str, labels: dict[str, str]) -> bool:
    """Does the seal label verify against this home's secret and the sealed files inside?"""
    from ptdesk.core.access.seal import sealed_container
    return sealed_container(site.config, labels, lambda path: site.engine.read_file(container_id, path),
                            kind.sealed_paths)


def _authorize_this_owner_key(site: Site, name: str) -> None:
    """Make the owner's key of *this* PTDESK_HOME open an adopted SSH experiment.

    It may have been launched from another home (`--owner`, or a store that was lost), so the key
    the printed ssh command names could be missing from it; the keys already there were kept as
    extra keys, so this only adds access, never removes it.
    """
    from ptdesk.core.collaborators.grants import container_lock, reinstall
    try:
        with container_lock(site.config, name):
            reinstall(site, name)
    except PtdeskError as exc:  # adopted all the same; the next grant or start renders it again
        log.warning("could not install the owner key in adopted %s: %s", name, exc.message)
