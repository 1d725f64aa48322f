"""Rotate a collaborator's key without ever locking them out.

The protocol, for every container the person is granted:
1. Make the new key; install it NEXT TO the old one (authorized_keys replaced atomically).
2. Prove the new key logs in (paramiko, host key pinned).
3. Only where that was proven: remove the old key, then prove the old key is refused.
A routine rotation (a new laptop, a schedule) changes only the key: the person's open sessions and
running processes (a training run in tmux) stay. A compromised one (`end_sessions`) also ends every
process of the person's account wherever the old key is retired, whatever key opened them: whoever
held the old key may have started them; the person logs in again with the new key.
Where a step fails, the old key stays valid there and the container is "pending"
(grants.pending = 1, collaborators.previous_* kept); a later `rotate` or the next start of that
container (`finish_pending`) finishes the job.

Stopped containers get the new key only (the old one removed) and the file is read back: the
point of rotating is usually that the old key must stop working, and a stopped container may be
started by anyone (a restart policy, `docker start`) before ptdesk can prove anything there. The
grant stays pending until its first start proves the new key, waiting for sshd on the readiness
schedule; a retired key is never put back, whatever happens: should the proof fail, the grant stays
pending with the new key only, and the next start or rotate tries again.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.access import accounts
from ptdesk.core.access.authorized_keys import CONTAINER_USER, read_authorized_keys
from ptdesk.core.access.sshcheck import LoginResult, try_login
from ptdesk.core.base import keys
from ptdesk.core.base.people_models import ContainerRotation, RotationResult
from ptdesk.core.base.waiting import next_delay
from ptdesk.core.collaborators.grants import (
    PREVIOUS,
    PRIVATE,
    collaborator,
    container_state,
    key_dir,
    parse_expires,
    person_lock,
    set_grant_keys,
)
from ptdesk.core.kinds import get_kind
from ptdesk.core.store.state import CollaboratorRecord, ExperimentRecord, GrantRecord
from ptdesk.errors import EngineUnavailable, InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def rotate(site: Site, name: str, expires: str | None = None, pubkey_text: str | None = None,
           end_sessions: bool = False) -> RotationResult:
    """Give `name` a new key everywhere they have access, or finish an earlier unfinished rotation.

    `pubkey_text`: the new public key of a person who brings their own (ptdesk cannot make one
    for them, nor log in as them: see _rotate_brought)."""
    record = collaborator(site, name)
    if not record.identity_file and pubkey_text is None:
        if record.previous_fingerprint:  # an earlier --pubkey rotation waits somewhere: finish it
            with person_lock(site.config, name):
                return _finish_brought(site, collaborator(site, name))
        raise InvalidInput(f"{name!r} brought their own key, so ptdesk cannot make a new one for them.",
                           f"Ask them for a new .pub, then: ptdesk collab rotate {name} --pubkey NEW.pub")
    if record.identity_file and pubkey_text is not None:
        raise InvalidInput(f"ptdesk made {name}'s key, so it makes the new one too.",
                           f"Rotate without --pubkey: ptdesk collab rotate {name}")
    with person_lock(site.config, name):
        if pubkey_text is not None:
            return _rotate_brought(site, collaborator(site, name), keys.parse_public_key(pubkey_text), expires,
                                   end_sessions)
        return _rotate(site, collaborator(site, name), expires, end_sessions)


def _rotate_brought(site: Site, record: CollaboratorRecord, public: str, expires: str | None,
                    end_sessions: bool) -> RotationResult:
    """A key the person brought is replaced in one step in every container (the new key in and
    the old one out in the same atomic rename), so there is no moment without a key they hold.
    ptdesk holds no private key to log in with, so the proof is the file itself, read back from
    each container: the new key there, the old one gone."""
    store, name, fingerprint = site.store, record.name, keys.fingerprint(public)
    if record.previous_fingerprint and any(g.pending for g in store.grants(collaborator=name)):
        raise InvalidInput(f"An earlier rotation of {name!r} is unfinished, so another cannot start yet.",
                           f"Finish it first: ptdesk collab rotate {name}")
    for other in store.collaborators():
        if fingerprint in (other.fingerprint, other.previous_fingerprint):
            raise InvalidInput(f"That key already belongs to collaborator {other.name!r}.",
                               "Each person needs a key of their own; ask for a new one.")
    when = parse_expires(expires) if expires is not None else record.expires
    store.begin_rotation(name, public, fingerprint, when)
    outcomes = []
    for grant in store.grants(collaborator=name):
        outcomes.append(_replace_brought(site, grant, fingerprint, record.fingerprint, end_sessions))
    result = RotationResult(name=name, old_fingerprint=record.fingerprint, fingerprint=fingerprint,
                            identity_file=None, containers=tuple(outcomes))
    _settle(site, name)
    store.audit("collab-rotate", name, {"old_fingerprint": record.fingerprint, "fingerprint": fingerprint,
                                        "brought": True, "end_sessions": end_sessions,
                                        "containers": {c.name: c.status for c in outcomes}})
    return result


def _finish_brought(site: Site, record: CollaboratorRecord) -> RotationResult:
    """Finish a --pubkey rotation where containers were paused or launching when it ran."""
    outcomes = tuple(_replace_brought(site, g, record.fingerprint, record.previous_fingerprint or "")
                     if g.pending else ContainerRotation(g.experiment, "rotated", False, "rotated earlier")
                     for g in site.store.grants(collaborator=record.name))
    _settle(site, record.name)
    return RotationResult(name=record.name, old_fingerprint=record.previous_fingerprint or record.fingerprint,
                          fingerprint=record.fingerprint, identity_file=None, containers=outcomes, resumed=True)


def _container_of(site: Site, grant: GrantRecord) -> tuple[ExperimentRecord | None, str]:
    """The grant's experiment record and its container's state ("gone" without a record)."""
    experiment = site.store.experiment(grant.experiment)
    return experiment, container_state(site, experiment) if experiment else "gone"


def _gone(name: str) -> ContainerRotation:
    return ContainerRotation(name, "failed", False, f"the container is gone; clean up with: ptdesk rm {name}")


def _replace_brought(site: Site, grant: GrantRecord, new: str, old: str,
                     end_sessions: bool = False) -> ContainerRotation:
    name = grant.experiment
    experiment, state = _container_of(site, grant)
    if state == "gone":
        return _gone(name)
    if state in ("paused", "launching"):
        # The store says new-only from now on, so any later render (a grant, the next start)
        # writes the new key alone; the grant stays pending until this container is changed.
        site.store.put_grant(grant.collaborator, name, (new,), pending=True)
        return ContainerRotation(name, "pending", False, f"the container is {state}; its file changes when it "
                                                         "starts again or at the next `ptdesk collab rotate`")
    try:
        _, done = set_grant_keys(site, grant, (new,), pending=False)
    except PtdeskError as exc:
        return ContainerRotation(name, "pending", False, f"the new key could not be installed ({exc.message})")
    assert experiment is not None and experiment.container_id and done is not None
    person = grant.collaborator
    on_disk = read_authorized_keys(site.engine, experiment.container_id, person)
    fingerprints = {keys.fingerprint(line.split(" ", 1)[1]) for line in on_disk.splitlines() if " " in line}
    if on_disk != done.files.get(person) or new not in fingerprints or old in fingerprints:
        return ContainerRotation(name, "pending", False, "the new authorized_keys did not read back as written")
    return ContainerRotation(name, "rotated", False, "replaced in one step, read back: the new key is there and "
                                                     "the old one gone (ptdesk cannot log in with a key you hold)"
                             + _ended_text(site, name, experiment.container_id, person, end_sessions))


def _rotate(site: Site, record: CollaboratorRecord, expires: str | None, end_sessions: bool) -> RotationResult:
    store, name = site.store, record.name
    grants = store.grants(collaborator=name)
    resumed = _unfinished(site, record, grants)
    if resumed:
        if expires is not None:
            raise InvalidInput(f"An earlier rotation of {name!r} is unfinished, so --expires cannot apply yet.",
                               f"Run `ptdesk collab rotate {name}` to finish it, then again with --expires.")
    else:
        when = parse_expires(expires) if expires is not None else record.expires
        if when is not None and when <= time.time():
            raise InvalidInput(f"{name}'s access expired, so a new key would not work either.",
                               f"Give the new key a lifetime: ptdesk collab rotate {name} --expires 30d")
        record = _begin(site, record, when)
        grants = store.grants(collaborator=name)
    try:
        outcomes = _drive(site, record, [g for g in grants if g.pending], end_sessions=end_sessions)
    except EngineUnavailable as exc:  # the new key is made and recorded: say that it waits, and for what
        raise EngineUnavailable(f"{exc.message} The rotation of {name} is begun and not finished.",
                                f"Once the engine answers, ptdesk collab rotate {name} finishes it "
                                "(ptdesk collab ls marks with * where it is pending).") from None
    containers = tuple(outcomes.get(g.experiment) or ContainerRotation(g.experiment, "rotated", True, "rotated earlier")
                       for g in grants)
    result = RotationResult(name=name, old_fingerprint=record.previous_fingerprint or record.fingerprint,
                            fingerprint=record.fingerprint, identity_file=record.identity_file,
                            containers=containers, resumed=resumed)
    _settle(site, name)
    store.audit("collab-rotate", name, {"old_fingerprint": result.old_fingerprint, "fingerprint": result.fingerprint,
                                        "resumed": resumed, "end_sessions": end_sessions,
                                        "containers": {c.name: c.status for c in containers}})
    return result


def finish_pending(site: Site, experiment: str) -> dict[str, ContainerRotation]:
    """Finish rotations left pending in a container that has just (re)started; by collaborator.

    Called by `experiments.start` and by the lifecycle's start-event handler. Never raises for a
    container problem: the outcome says what happened and the grant stays pending.
    """
    store = site.store
    outcomes: dict[str, ContainerRotation] = {}
    for listed in store.grants(experiment=experiment):
        if not listed.pending:
            continue
        with person_lock(site.config, listed.collaborator):
            # Read again under the lock: another process may have finished it meanwhile.
            record = store.collaborator(listed.collaborator)
            grant = next(iter(store.grants(collaborator=listed.collaborator, experiment=experiment)), None)
            if grant is None or not grant.pending or record is None:
                continue
            try:
                if record.identity_file:
                    outcome = _drive(site, record, [grant], patient=True)[experiment]
                else:  # a key they brought: replaced in one step, proven by reading the file back
                    outcome = _replace_brought(site, grant, record.fingerprint, record.previous_fingerprint or "")
            except PtdeskError as exc:
                outcome = ContainerRotation(experiment, "pending", False, exc.message)
            _settle(site, record.name)
        outcomes[record.name] = outcome
        store.audit("collab-rotate-finish", experiment, {"collaborator": record.name,
                                                         "fingerprint": record.fingerprint,
                                                         "status": outcome.status, "verified": outcome.verified})
    return outcomes


# --- steps -----------------------------------------------------------------------------------
def _unfinished(site: Site, record: CollaboratorRecord, grants: list[GrantRecord]) -> bool:
    """Is an earlier rotation still holding the old key somewhere, or waiting in a running container?"""
    if not record.previous_fingerprint:
        return False
    for grant in grants:
        experiment = site.store.experiment(grant.experiment)
        if not grant.pending or experiment is None:
            continue
        state = container_state(site, experiment)
        if state != "gone" and (record.previous_fingerprint in grant.installed or state == "running"):
            return True
    return False


def _begin(site: Site, record: CollaboratorRecord, expires: float | None) -> CollaboratorRecord:
    """New key pair on disk and in the store; the current one becomes 'previous'; grants pending."""
    current = Path(record.identity_file or "")
    folder = current.parent
    pair = keys.generate(comment=f"{record.name}@ptdesk")
    staged = keys.write_keypair(folder, pair, stem=f"{PRIVATE}.next")
    previous = folder / PREVIOUS
    os.replace(current, previous)
    try:
        site.store.begin_rotation(record.name, pair.public_line, pair.fingerprint, expires)
    except BaseException:
        os.replace(previous, current)
        for path in (staged, staged.with_name(f"{staged.name}.pub")):
            path.unlink(missing_ok=True)
        raise
    os.replace(staged.with_name(f"{staged.name}.pub"), current.with_name(f"{PRIVATE}.pub"))
    os.replace(staged, current)
    updated = site.store.collaborator(record.name)
    assert updated is not None
    return updated


def _drive(site: Site, record: CollaboratorRecord, grants: list[GrantRecord],
           patient: bool = False, end_sessions: bool = False) -> dict[str, ContainerRotation]:
    """Run the three phases over pending grants of one person; an outcome per experiment.

    `patient`: the containers have only just started (finish_pending), so the new key's login is
    retried on the readiness schedule until sshd is up, rather than judged by one early probe."""
    outcomes: dict[str, ContainerRotation] = {}
    proving: list[GrantRecord] = []
    for grant in grants:  # 1: new key next to the old one, everywhere
        step = _install_new(site, record, grant)
        if isinstance(step, ContainerRotation):
            outcomes[grant.experiment] = step
        else:
            proving.append(step)
    new_file = Path(record.identity_file or "")
    retiring = []
    for grant in proving:  # 2: the new key logs in, everywhere it is running
        login = _prove_login(site, grant.experiment, new_file) if patient else _login(site, grant.experiment, new_file)
        if login.ok:
            retiring.append(grant)
        else:
            outcomes[grant.experiment] = _keep_old(site, record, grant, login.detail)
    for grant in retiring:  # 3: only now the old key goes, where the new one was proven
        outcomes[grant.experiment] = _retire_old(site, record, grant, new_file.parent / PREVIOUS, end_sessions)
    return outcomes


def _install_new(site: Site, record: CollaboratorRecord, grant: GrantRecord) -> GrantRecord | ContainerRotation:
    name = grant.experiment
    experiment, state = _container_of(site, grant)
    if state == "gone":
        return _gone(name)
    if state in ("paused", "launching"):
        return ContainerRotation(name, "pending", False, f"the container is {state}; the old key stays valid there")
    new, old = record.fingerprint, record.previous_fingerprint
    if state == "stopped":
        installed: tuple[str, ...] = (new,)
    else:
        installed = tuple(dict.fromkeys([*(fp for fp in grant.installed if fp in (old, new)), new]))
    try:
        state, done = set_grant_keys(site, grant, installed, pending=True)
    except PtdeskError as exc:
        return ContainerRotation(name, "pending", False, f"the new key could not be installed ({exc.message}); "
                                                         "the old key stays valid there")
    if state == "stopped":
        assert experiment is not None and experiment.container_id and done is not None
        person = record.name
        if read_authorized_keys(site.engine, experiment.container_id, person) != done.files.get(person):
            return ContainerRotation(name, "pending", False, "the new authorized_keys did not read back as written")
        return ContainerRotation(name, "rotated", False, "stopped: the new key replaced the old one; "
                                                         "the login is proven when it starts")
    return replace(grant, installed=installed, pending=True)


def _keep_old(site: Site, record: CollaboratorRecord, grant: GrantRecord, why: str) -> ContainerRotation:
    """The new key did not log in (yet). Where the old key is still installed it stays valid; where
    it was already retired (the container was stopped when the rotation ran, and the rotation said
    so), it is never put back: a retired key must not log in anywhere again. The grant stays
    pending with the new key only, and the next start or `collab rotate` proves it."""
    if record.previous_fingerprint in grant.installed:
        return ContainerRotation(grant.experiment, "pending", False,
                                 f"the new key was not accepted ({why}); the old key stays valid there")
    return ContainerRotation(grant.experiment, "pending", False,
                             f"the new key did not log in yet ({why}); the retired key stays retired, and the "
                             "next start or `ptdesk collab rotate` proves the new one")


def _retire_old(site: Site, record: CollaboratorRecord, grant: GrantRecord, old_file: Path,
                end_sessions: bool) -> ContainerRotation:
    name = grant.experiment
    try:
        set_grant_keys(site, grant, (record.fingerprint,), pending=False)
    except PtdeskError as exc:
        return ContainerRotation(name, "pending", False,
                                 f"the new key works; the old key could not be removed yet ({exc.message})")
    experiment = site.store.experiment(name)
    ended = _ended_text(site, name, experiment.container_id if experiment else None, record.name, end_sessions)
    if not old_file.exists():
        return ContainerRotation(name, "rotated", False, "the new key logs in; the old key is removed" + ended)
    login = _login(site, name, old_file)
    if login.ok:  # e.g. the owner also authorised that very key with --pubkey
        return ContainerRotation(name, "failed", False, "the old key still logs in (it is authorised another way)")
    refused = login.detail.startswith("refused")
    return ContainerRotation(name, "rotated", refused, ("the new key logs in and the old key is refused" if refused
                             else f"the new key logs in; the old key's refusal could not be checked ({login.detail})")
                             + ended)


def _ended_text(site: Site, experiment: str, container_id: str | None, person: str, end_sessions: bool) -> str:
    """Ends the person's processes there when the rotation says so (a compromised key), and says what it did."""
    if not end_sessions:
        return "; their sessions and processes keep running"
    ended = accounts.end_in(site.engine, site.store, experiment, container_id, person, "rotate")
    if ended.error:
        return f"; their running processes could not be ended ({ended.error})"
    return f"; ended {ended.count} process(es) of theirs ({ended.sessions} session(s))" if ended.pids else ""


def _prove_login(site: Site, experiment: str, key_file: Path) -> LoginResult:
    """Log in with `key_file` on the readiness schedule (ptdesk.core.base.waiting) until it works, the
    container stops, or ready_timeout passes; the last attempt's result."""
    started = time.monotonic()
    deadline = started + site.config.ready_timeout
    record = site.store.experiment(experiment)
    while True:
        login = _login(site, experiment, key_file)
        if login.ok or login.detail == "host key mismatch" or time.monotonic() >= deadline:
            return login
        if record is None or not record.container_id or not site.engine.is_running(record.container_id):
            return login
        time.sleep(next_delay(time.monotonic() - started))


def _login(site: Site, experiment: str, key_file: Path) -> LoginResult:
    """One login with the host key pinned, at the port the engine publishes now (a container
    started behind ptdesk's back has a new one before anything updates the record)."""
    record = site.store.experiment(experiment)
    if record is None or not record.container_id or not record.host_public_key:
        return LoginResult(False, "unreachable: no container or host key on record")
    try:
        bound = site.engine.published_port(record.container_id, get_kind(record.kind).container_port)
    except PtdeskError as exc:
        return LoginResult(False, f"unreachable: {exc.message}")
    if bound is None:
        return LoginResult(False, "unreachable: no published port")
    return try_login(site.config.connect_host, bound[1], _account_of(site, key_file), key_file,
                     record.host_public_key, command=None)


def _account_of(site: Site, key_file: Path) -> str:
    """The account a key logs in to: a collaborator key ptdesk made (keys/collab/NAME/...) opens
    that person's own account; any other key, the owner's."""
    name = key_file.parent.name
    return name if key_file.parent == key_dir(site.config, name) else CONTAINER_USER


def _settle(site: Site, name: str) -> None:
    """Forget the previous key once no container is waiting on the rotation any more."""
    record = site.store.collaborator(name)
    if record is None or not record.previous_fingerprint:
        return
    if any(g.pending for g in site.store.grants(collaborator=name)):
        return
    site.store.update_collaborator(name, previous_public_key=None, previous_fingerprint=None)
    if record.identity_file:
        (Path(record.identity_file).parent / PREVIOUS).unlink(missing_ok=True)
