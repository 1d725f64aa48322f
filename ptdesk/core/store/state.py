"""SQLite store (WAL) of what ptdesk gave out: experiments, ports, GPUs, collaborators, grants, audit.

Several ptdesk processes share it (two terminals, the dashboard, a script). Writers take the
database lock up front (BEGIN IMMEDIATE) and wait for it with a generous busy timeout, so a user
never sees "database is locked"; read-modify-write steps such as picking a free GPU happen inside
one such transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.models import Limits
from ptdesk.core.base.private_files import ensure_private_dir
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.base.people_models import AuditEntry

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,              -- "launching" until ready, then the last state seen (running, exited)
    container_id TEXT,
    port INTEGER,
    gpus TEXT NOT NULL DEFAULT '[]',   -- JSON list of GPU indices held
    workspace TEXT,
    host_public_key TEXT,              -- ssh: the pinned host key
    launcher_pid INTEGER,              -- the process creating it while status = launching
    created REAL NOT NULL,
    limits TEXT NOT NULL DEFAULT '{}',
    extra_keys TEXT NOT NULL DEFAULT '[]'  -- ssh: public keys the owner brought (--pubkey)
);
CREATE TABLE IF NOT EXISTS collaborators (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    identity_file TEXT,
    created REAL NOT NULL,
    expires REAL,
    previous_public_key TEXT,          -- kept while a rotation is pending somewhere
    previous_fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS grants (
    collaborator TEXT NOT NULL REFERENCES collaborators(name) ON DELETE CASCADE,
    experiment TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
    installed TEXT NOT NULL DEFAULT '[]',  -- JSON list of fingerprints present in the container
    pending INTEGER NOT NULL DEFAULT 0,
    granted REAL NOT NULL,
    PRIMARY KEY (collaborator, experiment)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# Columns added after the first schema: (table, column, definition), applied to older databases.
ADDED_COLUMNS = (
    ("experiments", "extra_keys", "TEXT NOT NULL DEFAULT '[]'"),
    # ptdesk.core.environment.drift: the image id it was created from (not the tag), that image's environment
    # fingerprint, and the last live check of its packages (JSON: checked, fingerprint, changes).
    ("experiments", "image_id", "TEXT"),
    ("experiments", "env_fingerprint", "TEXT"),
    ("experiments", "env_check", "TEXT"),
    # ptdesk.core.access.accounts: the uid of the person's own account in SSH experiments (one per person).
    ("collaborators", "uid", "INTEGER"),
)


@dataclass(frozen=True)
class ExperimentRecord:
    name: str
    kind: str
    owner: str
    image: str
    status: str
    created: float
    container_id: str | None = None
    port: int | None = None
    gpus: tuple[int, ...] = ()
    workspace: str | None = None
    host_public_key: str | None = None
    launcher_pid: int | None = None
    limits: Limits = field(default_factory=Limits)
    extra_keys: tuple[str, ...] = ()
    image_id: str | None = None
    env_fingerprint: str | None = None
    env_check: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ExperimentRecord:
        data = dict(row)
        data["gpus"] = tuple(json.loads(data["gpus"] or "[]"))
        data["limits"] = Limits(**json.loads(data["limits"] or "{}"))
        data["extra_keys"] = tuple(json.loads(data["extra_keys"] or "[]"))
        return cls(**data)


@dataclass(frozen=True)
class CollaboratorRecord:
    name: str
    public_key: str
    fingerprint: str
    created: float
    identity_file: str | None = None  # None when they brought their own key
    expires: float | None = None
    previous_public_key: str | None = None  # set while a rotation is unfinished somewhere
    previous_fingerprint: str | None = None
    uid: int | None = None  # their account's uid in SSH experiments; given at the first grant


@dataclass(frozen=True)
class GrantRecord:
    collaborator: str
    experiment: str
    installed: tuple[str, ...]  # fingerprints that belong in the container's authorized_keys
    pending: bool
    granted: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> GrantRecord:
        return cls(row["collaborator"], row["experiment"], tuple(json.loads(row["installed"] or "[]")),
                   bool(row["pending"]), row["granted"])


_COLUMNS = [f.name for f in fields(ExperimentRecord)]


def integrity_problems(path: Path) -> list[str]:
    """What SQLite's integrity_check says of the database at `path` ([] when sound), read-only:
    looking must not create, migrate or lock the store. Raises sqlite3.DatabaseError when it
    cannot be read at all."""
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if result == ["ok"] else result


def actor() -> str:
    """Who is doing this, for the audit log."""
    import pwd

    try:
        account = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        account = str(os.getuid())
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or account


class Store:
    def __init__(self, path: Path) -> None:
        ensure_private_dir(path.parent)
        self.path = path
        # One connection may serve several threads (dashboard workers): transactions take turns.
        self._lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL stays consistent on a crash; a power cut may lose the last commits, which
            # reconciliation against the engine's labels recovers.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self._create_or_upgrade()
        except sqlite3.DatabaseError as exc:
            raise PtdeskError(f"The state database {path} cannot be opened: {exc}.",
                              "Check the disk and permissions; `ptdesk doctor` says more.") from None
        os.chmod(path, 0o600)

    def _create_or_upgrade(self) -> None:
        """Make the tables, or bring a database made by an earlier ptdesk up to date, in one write
        transaction: processes opening a new store at the same moment take turns, so the second
        finds the columns the first added (looking and adding apart, both would add them)."""
        with self._lock:
            try:
                # executescript commits what is pending, then runs the script; the BEGIN inside it
                # opens the transaction the rest of the upgrade runs in.
                self.conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}")
                self._add_missing_columns()
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            except BaseException:
                if self.conn.in_transaction:  # never leave the write lock held for other processes
                    self.conn.execute("ROLLBACK")
                self.conn.close()
                raise
            self.conn.execute("COMMIT")

    def _add_missing_columns(self) -> None:
        """Columns are only ever added."""
        for table, column, definition in ADDED_COLUMNS:
            have = {row["name"] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:  # not under a thread's transaction: SQLite would crash, not raise
            self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database lock from its first statement."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    # --- experiments -----------------------------------------------------------------------
    def experiment(self, name: str) -> ExperimentRecord | None:
        row = self.conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        return ExperimentRecord.from_row(row) if row else None

    def experiments(self) -> list[ExperimentRecord]:
        rows = self.conn.execute("SELECT * FROM experiments ORDER BY created").fetchall()
        return [ExperimentRecord.from_row(r) for r in rows]

    def insert_experiment(self, conn: sqlite3.Connection, record: ExperimentRecord) -> None:
        data = asdict(record)
        data["gpus"] = json.dumps(list(record.gpus))
        data["limits"] = json.dumps(asdict(record.limits))
        data["extra_keys"] = json.dumps(list(record.extra_keys))
        conn.execute(f"INSERT INTO experiments ({', '.join(_COLUMNS)}) VALUES "
                     f"({', '.join('?' for _ in _COLUMNS)})", [data[c] for c in _COLUMNS])

    def update_experiment(self, name: str, **changes: object) -> None:
        if not changes:
            return
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown experiment columns {unknown}")
        values = [json.dumps(list(v)) if k in ("gpus", "extra_keys") else v for k, v in changes.items()]
        with self.tx() as conn:
            conn.execute(f"UPDATE experiments SET {', '.join(f'{k} = ?' for k in changes)} WHERE name = ?",
                         [*values, name])

    def delete_experiment_if(self, name: str, expected: Mapping[str, object] | None = None,
                             first: Callable[[], None] | None = None) -> bool:
        """Compare and delete: remove the record of `name` only while its columns still hold
        `expected` (whatever they hold when None), checked and done under the database lock.
        `first` runs inside the lock before the record goes (host-side secrets are discarded
        first, so a launch reusing the name cannot slip in between). False when nothing matched."""
        with self.tx() as conn:
            row = conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None or any(row[column] != value for column, value in (expected or {}).items()):
                return False
            if first is not None:
                first()
            conn.execute("DELETE FROM experiments WHERE name = ?", (name,))
        return True

    def held_gpus(self, conn: sqlite3.Connection | None = None) -> dict[int, str]:
        """GPU index -> experiment holding it (launching, running, or stopped but not removed)."""
        rows = (conn or self.conn).execute("SELECT name, gpus FROM experiments").fetchall()
        return {gpu: row["name"] for row in rows for gpu in json.loads(row["gpus"] or "[]")}

    # --- collaborators and grants (ptdesk.core.collaborators.grants) ---------------------------------------
    def collaborator(self, name: str) -> CollaboratorRecord | None:
        row = self.conn.execute("SELECT * FROM collaborators WHERE name = ?", (name,)).fetchone()
        return CollaboratorRecord(**dict(row)) if row else None

    def collaborators(self) -> list[CollaboratorRecord]:
        rows = self.conn.execute("SELECT * FROM collaborators ORDER BY name").fetchall()
        return [CollaboratorRecord(**dict(r)) for r in rows]

    def insert_collaborator(self, record: CollaboratorRecord) -> None:
        data = asdict(record)
        with self.tx() as conn:
            conn.execute(f"INSERT INTO collaborators ({', '.join(data)}) VALUES ({', '.join('?' for _ in data)})",
                         list(data.values()))

    def update_collaborator(self, name: str, **changes: object) -> None:
        unknown = set(changes) - {f.name for f in fields(CollaboratorRecord)}
        if unknown:
            raise ValueError(f"unknown collaborator columns {unknown}")
        with self.tx() as conn:
            conn.execute(f"UPDATE collaborators SET {', '.join(f'{k} = ?' for k in changes)} WHERE name = ?",
                         [*changes.values(), name])

    def begin_rotation(self, name: str, public_key: str, fingerprint: str, expires: float | None) -> None:
        """One step: the new key becomes current, the current one 'previous', every grant pending."""
        with self.tx() as conn:
            conn.execute("UPDATE collaborators SET previous_public_key = public_key, "
                         "previous_fingerprint = fingerprint, public_key = ?, fingerprint = ?, expires = ? "
                         "WHERE name = ?", (public_key, fingerprint, expires, name))
            conn.execute("UPDATE grants SET pending = 1 WHERE collaborator = ?", (name,))

    def assign_uid(self, name: str, first: int, last: int) -> int:
        """The uid of `name`'s account: kept once given, else the next never-given one in [first, last].
        A uid is never given twice, not even after its person was removed: files they left in a
        workspace must not become someone else's."""
        with self.tx() as conn:
            row = conn.execute("SELECT uid FROM collaborators WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ValueError(f"no collaborator {name!r}")
            if row["uid"] is not None:
                return int(row["uid"])
            mark = f"accounts.last_uid.{first}"
            given = conn.execute("SELECT value FROM meta WHERE key = ?", (mark,)).fetchone()
            top = conn.execute("SELECT MAX(uid) FROM collaborators WHERE uid BETWEEN ? AND ?",
                               (first, last)).fetchone()[0]
            uid = max(int(given["value"]) if given else first - 1, int(top) if top is not None else first - 1) + 1
            if uid > last:
                raise PtdeskError("No account uid is left for another collaborator.",
                                  "Remove collaborators who no longer need access (ptdesk collab rm NAME).")
            conn.execute("UPDATE collaborators SET uid = ? WHERE name = ?", (uid, name))
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (mark, str(uid)))
            return uid

    def account_map(self) -> dict[int, str]:
        """uid -> person, for every collaborator who was given an account."""
        rows = self.conn.execute("SELECT uid, name FROM collaborators WHERE uid IS NOT NULL").fetchall()
        return {int(r["uid"]): r["name"] for r in rows}

    def delete_collaborator(self, name: str) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM collaborators WHERE name = ?", (name,))

    def grants(self, collaborator: str | None = None, experiment: str | None = None) -> list[GrantRecord]:
        sql, args = "SELECT * FROM grants WHERE 1=1", []
        if collaborator is not None:
            sql, args = sql + " AND collaborator = ?", [*args, collaborator]
        if experiment is not None:
            sql, args = sql + " AND experiment = ?", [*args, experiment]
        rows = self.conn.execute(sql + " ORDER BY granted, experiment", args).fetchall()
        return [GrantRecord.from_row(r) for r in rows]

    def put_grant(self, collaborator: str, experiment: str, installed: tuple[str, ...], pending: bool) -> None:
        """Insert or update one grant (its `granted` time is kept on update)."""
        with self.tx() as conn:
            conn.execute("INSERT INTO grants (collaborator, experiment, installed, pending, granted) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (collaborator, experiment) DO UPDATE SET "
                         "installed = excluded.installed, pending = excluded.pending",
                         (collaborator, experiment, json.dumps(list(installed)), int(pending), time.time()))

    def delete_grant(self, collaborator: str, experiment: str) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM grants WHERE collaborator = ? AND experiment = ?", (collaborator, experiment))

    # --- audit -----------------------------------------------------------------------------
    def audit(self, action: str, target: str, detail: dict | None = None, who: str | None = None) -> None:
        with self.tx() as conn:
            conn.execute("INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                         (time.time(), who or actor(), action, target, json.dumps(detail or {}, sort_keys=True)))

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        from ptdesk.core.base.people_models import AuditEntry
        rows = self.conn.execute("SELECT time, actor, action, target, detail FROM audit ORDER BY id").fetchall()
        entries = [AuditEntry(r["time"], r["actor"], r["action"], r["target"], json.loads(r["detail"]))
                   for r in rows]
        return entries[-limit:] if limit else entries

    # --- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def read_experiments(path: Path) -> list[ExperimentRecord]:
    """The committed experiment records, read through a connection of its own that only reads:
    it never waits for (nor deadlocks with) a write transaction this process holds. [] when the
    database does not exist yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=ON")
        return [ExperimentRecord.from_row(r) for r in conn.execute("SELECT * FROM experiments ORDER BY created")]
    finally:
        conn.close()
