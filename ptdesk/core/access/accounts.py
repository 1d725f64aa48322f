"""Each person has their own account in an SSH experiment; this is what ptdesk knows of them.

The owner's account is the image's "ptdesk", running as the owner's host uid (workspace files
belong to the owner on the host). Each granted collaborator gets an account named after them, with
a uid ptdesk gives once per person and keeps in the store (so `ptdesk gpus` can name whoever runs
a GPU process, and the same person has the same uid in every experiment of this owner), a home of
their own (0700) and membership of ptdesk-share, the group /workspace is shared through while anyone
is granted. Its gid (`share_gid`) is the first id of the owner's collaborator block: no host group
has it, so what collaborators make in the workspace (a setgid file included) never carries a host
group with a meaning, and the owner reaches their files on the host through a default ACL entry
for the owner's uid instead. `other` gets nothing in that ACL; after the last grant goes, it is
removed again with the setgid bit, and setuid/setgid files in the workspace are made plain at every
start and grant change (ptdesk-accounts).

Collaborator uids: UID_BASE + (owner uid mod 10000) * 10000 + 1 ... + 9999, i.e. within
1_900_000_000-1_999_999_999. That is far above every login uid (Debian's UID_MAX is 60000), above
the subordinate-uid ranges user namespaces hand out (from 100000, 65536 per user), below 2^31 (tools
with signed uids), and disjoint between owners whose uids differ mod 10000 — so a collaborator's
uid is never the owner's, nor (usually) another owner's collaborator's. The image's
ptdesk-accounts script accepts no uid outside the whole range, so no line can become root or the owner.

Ending a person's processes (`end_processes`) is that script's `end`, run as root through docker
exec, which becomes that uid (setpriv) to signal all of its processes at once (`kill -KILL -1`);
sshd's monitor, root, still ends a closed session's child with CAP_KILL, which the SSH kind adds
(see the README's security model).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ptdesk.core.access.authorized_keys import ACCOUNTS_SCRIPT, CONTAINER_USER
from ptdesk.core.base.text import printable
from ptdesk.core.engine.client import Engine
from ptdesk.core.store.state import Store
from ptdesk.errors import InvalidInput, PtdeskError

UID_BASE = 1_900_000_000
UID_LAST = 1_999_999_999  # the end of every owner's collaborator block (ptdesk-accounts' UID_LAST)
UID_BLOCK = 10_000
# Accounts every Debian/Ubuntu image has (and ptdesk's own): never a collaborator's name.
RESERVED_NAMES = frozenset({
    CONTAINER_USER, "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "ubuntu",
    "systemd-network", "systemd-resolve", "systemd-timesync", "ptdesk-login", "staff", "users",
})


def uid_range(owner_uid: int) -> tuple[int, int]:
    """First and last collaborator uid of the owner whose host uid is `owner_uid`."""
    first = UID_BASE + (owner_uid % UID_BLOCK) * UID_BLOCK + 1
    return first, first + UID_BLOCK - 2


def share_gid(owner_uid: int) -> int:
    """The gid of the group an owner's workspace is shared through (ptdesk-accounts computes the same)."""
    return uid_range(owner_uid)[0] - 1


def check_account_name(name: str) -> str:
    """A collaborator's name becomes their account's name: it may not be a system account's."""
    if name in RESERVED_NAMES:
        raise InvalidInput(f"{name!r} is the name of a system account in the experiment containers.",
                           "Pick another collaborator name (their initials, or name.surname).")
    return name


def account_uid(store: Store, owner_uid: int, person: str) -> int:
    first, last = uid_range(owner_uid)
    return store.assign_uid(person, first, last)


def render_accounts(people: Iterable[tuple[str, int]]) -> str:
    """The accounts file ptdesk-accounts reads: "NAME UID" per collaborator with access."""
    return "".join(f"{name} {uid}\n" for name, uid in people)


@dataclass(frozen=True)
class Ended:
    """What ending a person's account in one container stopped."""

    person: str
    experiment: str
    pids: tuple[int, ...] = ()  # container-side pids, as ps inside the container shows them
    sessions: int = 0  # of which sshd session processes (one per open login)
    error: str | None = None  # why nothing could be ended (the container could not be asked)
    why: str | None = None  # what ended them (revoke, rotate, expired, no grant, ...)

    @property
    def count(self) -> int:
        return len(self.pids)

    def outcome(self) -> str:
        if self.error:
            return f"could not end {self.person}'s processes ({self.error})"
        if not self.pids:
            return f"nothing of {self.person}'s was running"
        return f"ended {self.count} process(es) of {self.person}, {self.sessions} login session(s)"

    def summary(self) -> str:
        return f"{self.experiment}: {self.outcome()}"

    def to_json(self) -> dict:
        out: dict = {"person": self.person, "experiment": self.experiment, "count": self.count,
                     "sessions": self.sessions, "pids": list(self.pids)}
        if self.error:
            out["error"] = self.error
        if self.why:
            out["why"] = self.why
        return out

    def audit(self) -> dict:
        """What the audit log keeps of it: numbers only, never text from inside the container."""
        return {"person": self.person, "ended": self.count, "sessions": self.sessions, "pids": list(self.pids),
                **({"error": self.error} if self.error else {})}


def end_processes(engine: Engine, container_id: str, person: str, experiment: str,
                  account: str | None = None) -> Ended:
    """End every process of `person`'s account (or of `account`, a collaborator uid, when the
    container may no longer list it) in a running container: the script signals all of them in one
    kernel pass as that uid, until none is left, so no fork chain outruns it. Never raises: a
    container that cannot be asked is an Ended with its error, which callers report."""
    if person == CONTAINER_USER:
        raise ValueError("the owner's account is never ended")
    try:
        rc, out = engine.exec(container_id, [ACCOUNTS_SCRIPT, "end", account or person])
    except PtdeskError as exc:
        return Ended(person, experiment, error=exc.message)
    if rc != 0:
        return Ended(person, experiment, error=out.decode(errors="replace").strip()[:200] or f"exit {rc}")
    pids: list[int] = []
    sessions = 0
    for line in out.decode(errors="replace").splitlines():
        pid, _, what = line.strip().partition(" ")
        if pid.isdigit():
            pids.append(int(pid))
            sessions += what == "session"
    return Ended(person, experiment, tuple(pids), sessions)


def _state(engine: Engine, container_id: str | None) -> str:
    data = engine.try_inspect(container_id) if container_id else None
    state = (data or {}).get("State") or {}
    return "paused" if state.get("Paused") else "running" if state.get("Running") else "stopped"


def end_in(engine: Engine, store: Store, experiment: str, container_id: str | None, person: str,
           why: str, account: str | None = None) -> Ended:
    """End `person`'s processes in one experiment (nothing runs in a stopped or gone one) and
    audit it. A paused container's processes would run on when unpaused: an error, tried again."""
    state = _state(engine, container_id)
    if state == "paused":
        ended = Ended(person, experiment, error="the container is paused; unpause it to end them")
    elif state != "running":
        ended = Ended(person, experiment)
    else:
        assert container_id is not None
        ended = end_processes(engine, container_id, person, experiment, account)
    store.audit("ended-processes", experiment, {**ended.audit(), "why": why})
    return replace(ended, why=why)


def running_processes(engine: Engine, store: Store, person: str) -> dict[str, tuple[str, ...]]:
    """What of `person`'s runs in each running experiment they are granted ("PID COMMAND" each), so a
    rotation that ends their sessions can say first what it would end. Read-only; an experiment that
    cannot be asked is left out."""
    found: dict[str, tuple[str, ...]] = {}
    for grant in store.grants(collaborator=person):
        experiment = store.experiment(grant.experiment)
        if experiment is None or _state(engine, experiment.container_id) != "running":
            continue
        assert experiment.container_id is not None
        try:
            rc, out = engine.exec(experiment.container_id, ["/usr/bin/ps", "-o", "pid=,stat=,comm=", "-u", person])
        except PtdeskError:
            continue
        rows = [line.split(None, 2) for line in out.decode(errors="replace").splitlines()] if rc == 0 else []
        # Zombies are already dead; command names come from inside the container: printed plainly.
        alive = tuple(f"{row[0]} {printable(row[2])}" for row in rows if len(row) == 3 and not row[1].startswith("Z"))
        if alive:
            found[grant.experiment] = alive
    return found
