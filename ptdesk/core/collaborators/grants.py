"""Collaborators and their grants: who may log in to which SSH experiment, with which key.

The authorized_keys files of a container (one per account: the owner's, and each granted
collaborator's own, ptdesk.core.access.accounts) are never edited in place: they are always computed from
the state store (the owner's key, the keys the owner brought, and every granted collaborator's
installed keys) by `rendered`, which renders with `authorized_keys.render_account_files`, built on
the function the launch renders the first file with (owner and brought keys, no grants yet).
Revoking ends the person's processes there too (their account's, so nobody else's).
Every change (grant, revoke, rotate, remove) goes through `set_grant_keys`/`_change`, which
records the change, re-renders, installs atomically and puts the record back if installing
failed. So the store never claims less access than a container really gives, and two ptdesk
processes changing one container take turns (a per-container lock).

Rotation lives in ptdesk.core.collaborators.rotation, which uses these.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.access import accounts
from ptdesk.core.access.accounts import Ended
from ptdesk.core.access.authorized_keys import (
    CONTAINER_USER,
    GrantedKey,
    install_authorized_keys,
    owner_key,
    render_account_files,
)
from ptdesk.core.access.ownership import refuse_if_foreign
from ptdesk.core.base import durations, keys, names, private_files
from ptdesk.core.base.names import validate_name as validate_experiment_name
from ptdesk.core.base.people_models import Collaborator
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.notify.routes import remove_routes_for
from ptdesk.core.store.state import CollaboratorRecord, ExperimentRecord, GrantRecord
from ptdesk.errors import Conflict, InvalidInput, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

PRIVATE = "id_ed25519"
PREVIOUS = "id_ed25519.previous"  # the key being rotated away, kept until every container dropped it


# --- pure helpers ----------------------------------------------------------------------------
def validate_name(name: str) -> str:
    if not names.USER_NAME_RE.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a valid collaborator name.",
                           "Use a Unix-style user name: lower-case letters, digits, '.', '_' or '-'.")
    return name


def parse_expires(text: str | None, now: float | None = None) -> float | None:
    """A duration from now ('30d', '1.5h', '2w': the duration grammar), or a date 'YYYY-MM-DD' (UTC
    midnight); None for no expiry."""
    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    text = text.strip().lower()
    seconds = durations.seconds(text)
    if seconds is not None:
        if seconds <= 0:
            raise InvalidInput(f"Expiry {text!r} is not in the future.", "Use a positive duration like 30d.")
        return now + seconds
    try:
        when = float(calendar.timegm(time.strptime(text, "%Y-%m-%d")))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an expiry.",
                           f"Use a duration ({durations.FORMS}) or a date YYYY-MM-DD.") from None
    if when <= now:
        raise InvalidInput(f"Expiry {text} is already past.", "Give a future date or a duration like 30d.")
    return when


def key_lines(record: CollaboratorRecord, installed: tuple[str, ...]) -> list[str]:
    """The public key lines behind a grant's installed fingerprints (current and/or previous key)."""
    known = {record.fingerprint: record.public_key}
    if record.previous_fingerprint and record.previous_public_key:
        known[record.previous_fingerprint] = record.previous_public_key
    return [known[fp] for fp in installed if fp in known]


def granted_lines(collaborators: list[tuple[CollaboratorRecord, tuple[str, ...]]]) -> list[GrantedKey]:
    """Each granted collaborator's installed key lines with that person's expiry, in grant order."""
    return [GrantedKey(record.name, line, record.expires)
            for record, installed in collaborators for line in key_lines(record, installed)]


# --- where things live -----------------------------------------------------------------------
def key_dir(config: Config, name: str) -> Path:
    return config.keys_dir / "collab" / name


@contextmanager
def _flock(config: Config, name: str) -> Iterator[None]:
    folder = private_files.ensure_private_dir(config.home / "locks")
    with open(folder / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def container_lock(config: Config, experiment: str) -> contextlib.AbstractContextManager[None]:
    """Serialise render+install of one container's authorized_keys across ptdesk processes."""
    return _flock(config, f"authorized_keys-{experiment}")


def person_lock(config: Config, name: str) -> contextlib.AbstractContextManager[None]:
    """One rotation step of a person at a time (`ptdesk start` and the event watcher may both
    finish the same pending rotation). Taken before, never inside, a container_lock."""
    return _flock(config, f"collab-{name}")


def container_state(site: Site, record: ExperimentRecord) -> str:
    """'running', 'paused', 'stopped', 'gone' or 'launching' for an experiment's container."""
    if record.status == "launching" or not record.container_id:
        return "launching"
    data = site.engine.try_inspect(record.container_id)
    if data is None:
        return "gone"
    state = data.get("State") or {}
    if state.get("Paused"):
        return "paused"
    return "running" if state.get("Running") else "stopped"


# --- rendering and installing ----------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """Everything ptdesk places for an experiment's logins: authorized_keys by account, accounts file."""

    files: dict[str, str]
    accounts: str

    @property
    def owner_text(self) -> str:
        return self.files[CONTAINER_USER]


def rendered(site: Site, experiment: str) -> Rendered:
    """THE authorized_keys files and accounts list of an experiment, from state alone."""
    store = site.store
    record = _experiment(site, experiment)
    _, owner_public = owner_key(site.config, record.owner)
    granted = []
    for grant in store.grants(experiment=experiment):
        collab = store.collaborator(grant.collaborator)
        if collab is not None:
            granted.append((collab, grant.installed))
    files = render_account_files(owner_public, record.extra_keys, granted_lines(granted))
    people = [(c.name, accounts.account_uid(store, site.config.uid, c.name)) for c, _ in granted]
    for name, _ in people:
        files.setdefault(name, "")  # granted, no key installed right now: an account without a key
    return Rendered(files, accounts.render_accounts(people))


def authorized_keys_text(site: Site, experiment: str) -> str:
    """The owner account's authorized_keys of an experiment, from state alone."""
    return rendered(site, experiment).owner_text


def reinstall(site: Site, experiment: str) -> tuple[str, Rendered]:
    """Render from state and install into the container; returns (container state, what was rendered).

    Raises NotFound when the container is gone and PtdeskError when it cannot be changed now.
    Call with container_lock held.
    """
    record = _experiment(site, experiment)
    state = container_state(site, record)
    if state in ("gone", "launching"):
        raise NotFound(f"The container of {experiment!r} is {'gone' if state == 'gone' else 'still launching'}.",
                       f"Check it with: ptdesk ls --all (remove leftovers with: ptdesk rm {experiment})")
    if state == "paused":
        raise PtdeskError(f"The container of {experiment!r} is paused, so its keys cannot be changed.",
                          "Unpause it (docker unpause) and try again.")
    result = rendered(site, experiment)
    files = dict(result.files)
    if state == "stopped":
        # put_archive cannot delete: a person without access here gets an empty file now, and the
        # entrypoint removes their file and login right at boot, before sshd starts.
        for person in site.store.collaborators():
            files.setdefault(person.name, "")
    assert record.container_id
    install_authorized_keys(site.engine, record.container_id, files, result.accounts, running=state == "running")
    return state, result


def _change(site: Site, experiment: str, change: Callable[[], None], undo: Callable[[], None],
            gone_ok: bool = False) -> tuple[str, Rendered | None]:
    """Record a change, install the result, undo the record if installing failed."""
    with container_lock(site.config, experiment):
        change()
        try:
            return reinstall(site, experiment)
        except NotFound:
            if gone_ok:  # no container: nothing there to give or take away
                return "gone", None
            undo()
            raise
        except BaseException:
            undo()
            raise


def set_grant_keys(site: Site, grant: GrantRecord, installed: tuple[str, ...],
                   pending: bool) -> tuple[str, Rendered | None]:
    """Make a grant's installed keys `installed` in the store and in the container, or in neither."""
    store = site.store
    return _change(site, grant.experiment,
                   lambda: store.put_grant(grant.collaborator, grant.experiment, installed, pending),
                   lambda: store.put_grant(grant.collaborator, grant.experiment, grant.installed, grant.pending))


# --- lookups ---------------------------------------------------------------------------------
def _experiment(site: Site, name: str) -> ExperimentRecord:
    validate_experiment_name(name)
    record = site.store.experiment(name)
    if record is None:
        refuse_if_foreign(site, name)  # another user's container: say whose, not "no such experiment"
        raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
    return record


def ssh_experiment(site: Site, name: str) -> ExperimentRecord:
    record = _experiment(site, name)
    if not get_kind(record.kind).grants_logins:
        takes = ", ".join(k.title for k in REGISTRY.values() if k.grants_logins)
        raise PtdeskError(f"{name!r} is a {record.kind} experiment; collaborators get access to {takes} "
                           "experiments only.", "Grant access to one of those (ptdesk ls shows each one's kind).")
    return record


def collaborator(site: Site, name: str) -> CollaboratorRecord:
    validate_name(name)  # what was typed is malformed (exit 2) before it is merely unknown (exit 1)
    record = site.store.collaborator(name)
    if record is None:
        raise NotFound(f"No collaborator named {name!r}.", "List them with: ptdesk collab ls")
    return record


def _grant(site: Site, name: str, experiment: str) -> GrantRecord | None:
    found = site.store.grants(collaborator=name, experiment=experiment)
    return found[0] if found else None


def _public(record: CollaboratorRecord) -> Collaborator:
    return Collaborator(name=record.name, fingerprint=record.fingerprint, public_key=record.public_key,
                        identity_file=record.identity_file, created=record.created, expires=record.expires)


# --- the operations --------------------------------------------------------------------------
def add(site: Site, name: str, pubkey_text: str | None = None, expires: str | None = None) -> Collaborator:
    """A new collaborator with their own public key, or a key pair ptdesk makes for them."""
    accounts.check_account_name(validate_name(name))
    when = parse_expires(expires)
    public = keys.parse_public_key(pubkey_text) if pubkey_text is not None else None
    with person_lock(site.config, name):  # two adds of one name must not share a key folder
        record = _insert(site, name, public, when)
    site.store.audit("collab-add", name, {"fingerprint": record.fingerprint, "expires": durations.iso_utc(when),
                                          "key": "ptdesk-made" if record.identity_file else "their own"})
    return _public(record)


def _insert(site: Site, name: str, public: str | None, expires: float | None) -> CollaboratorRecord:
    store = site.store
    if store.collaborator(name) is not None:
        raise Conflict(f"A collaborator named {name!r} already exists.",
                       f"Pick another name, or rotate their key: ptdesk collab rotate {name}")
    if public is not None:
        fp = keys.fingerprint(public)
        for other in store.collaborators():
            if fp in (other.fingerprint, other.previous_fingerprint):
                raise Conflict(f"That key already belongs to collaborator {other.name!r}.",
                               "Each person needs a key of their own.")
    folder = key_dir(site.config, name)
    identity: str | None = None
    if public is None:
        pair = keys.generate(comment=f"{name}@ptdesk")
        identity = str(keys.write_keypair(private_files.ensure_private_dir(folder), pair))
        public = pair.public_line
    record = CollaboratorRecord(name=name, public_key=public, fingerprint=keys.fingerprint(public),
                                created=time.time(), identity_file=identity, expires=expires)
    try:
        store.insert_collaborator(record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return record


def list_collaborators(site: Site) -> list[Collaborator]:
    store = site.store
    out = []
    for record in store.collaborators():
        grants = tuple(g.experiment for g in store.grants(collaborator=record.name))
        out.append(Collaborator(**{**_public(record).__dict__, "grants": grants}))
    return out


def pending_grants(site: Site, name: str) -> tuple[str, ...]:
    """Experiments where a rotation of `name` is not finished yet."""
    return tuple(g.experiment for g in site.store.grants(collaborator=name) if g.pending)


def grant(site: Site, name: str, experiment: str) -> bool:
    """Let a collaborator log in to an SSH experiment; False when they already could."""
    validate_name(name), validate_experiment_name(experiment)  # all typed input first: exit 2
    record = collaborator(site, name)
    ssh_experiment(site, experiment)
    store = site.store
    # Under the person's lock: a rotation running meanwhile would miss (or re-create) this grant.
    with person_lock(site.config, name):
        record = collaborator(site, name)  # the key may have just been rotated
        if _grant(site, name, experiment) is not None:
            return False
        _change(site, experiment,
                lambda: store.put_grant(name, experiment, (record.fingerprint,), pending=False),
                lambda: store.delete_grant(name, experiment))
    store.audit("grant", experiment, {"collaborator": name, "fingerprint": record.fingerprint})
    return True


def revoke(site: Site, name: str, experiment: str) -> Ended:
    """Take a collaborator's access away: new logins are refused from the moment this returns, and
    their sessions and every process of their account there have been ended (what, it says)."""
    validate_name(name), validate_experiment_name(experiment)  # all typed input first: exit 2
    collaborator(site, name)
    ssh_experiment(site, experiment)
    with person_lock(site.config, name):
        existing = _grant(site, name, experiment)
        if existing is None:
            raise NotFound(f"{name!r} has no access to {experiment!r}.", "See who has: ptdesk collab ls")
        return _revoke(site, existing)


def _revoke(site: Site, existing: GrantRecord) -> Ended:
    store = site.store
    try:
        _change(site, existing.experiment,
                lambda: store.delete_grant(existing.collaborator, existing.experiment),
                lambda: store.put_grant(existing.collaborator, existing.experiment, existing.installed,
                                        existing.pending),
                gone_ok=True)
    except PtdeskError as exc:
        # Its kind (and exit code) kept: an unreachable engine is still one (exit 3).
        raise type(exc)(f"{existing.collaborator!r} still has access to {existing.experiment!r}: {exc.message}",
                        exc.hint) from None
    record = store.experiment(existing.experiment)
    ended = accounts.end_in(site.engine, store, existing.experiment, record.container_id if record else None,
                            existing.collaborator, "revoke")
    store.audit("revoke", existing.experiment, {"collaborator": existing.collaborator,
                                                "fingerprints": list(existing.installed),
                                                "ended": ended.count, "sessions": ended.sessions})
    return ended


def remove(site: Site, name: str) -> list[Ended]:
    """Revoke a collaborator everywhere (ending what they run there), then forget them and delete
    the keys ptdesk made."""
    record = collaborator(site, name)
    ended = []
    with person_lock(site.config, name):  # not while a rotation of theirs is half-way
        for existing in site.store.grants(collaborator=name):
            ended.append(_revoke(site, existing))  # stops at the first container that cannot be changed
        site.store.delete_collaborator(name)
        shutil.rmtree(key_dir(site.config, name), ignore_errors=True)
        routes = remove_routes_for(site.config.home, name)
    site.store.audit("collab-remove", name, {"fingerprint": record.fingerprint,
                                           "ended": sum(e.count for e in ended), "routes": routes})
    return ended
