"""The state store: migrations of older databases and the writers' lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ptdesk.core.base.models import Limits
from ptdesk.core.store.state import ExperimentRecord, Store


def test_a_database_from_before_extra_keys_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.execute("""CREATE TABLE experiments (name TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL,
        image TEXT NOT NULL, status TEXT NOT NULL, container_id TEXT, port INTEGER,
        gpus TEXT NOT NULL DEFAULT '[]', workspace TEXT, host_public_key TEXT, launcher_pid INTEGER,
        created REAL NOT NULL, limits TEXT NOT NULL DEFAULT '{}')""")
    old.execute("INSERT INTO experiments (name, kind, owner, image, status, created) "
                "VALUES ('kept', 'ssh', 'alice', 'img', 'running', 1.0)")
    old.commit()
    old.close()

    store = Store(path)
    kept = store.experiment("kept")
    assert kept is not None and kept.extra_keys == () and kept.owner == "alice"
    with store.tx() as conn:
        store.insert_experiment(conn, ExperimentRecord(
            name="new", kind="ssh", owner="bob", image="img", status="running", created=2.0,
            limits=Limits(), extra_keys=("ssh-ed25519 AAAA bob",)))
    assert store.experiment("new").extra_keys == ("ssh-ed25519 AAAA bob",)  # type: ignore[union-attr]
    store.close()


def test_closing_waits_for_another_threads_transaction_which_keeps_its_write(tmp_path: Path) -> None:
    """The dashboard's workers share the store's one connection; closing it under a transaction made
    SQLite crash the process (seen when a test left the app while a start was still auditing). A close
    now waits for the transaction, and what it wrote is kept."""
    import threading

    store = Store(tmp_path / "state.db")
    inside, go = threading.Event(), threading.Event()

    def audit_slowly() -> None:
        with store.tx() as conn:
            inside.set()
            go.wait(10)
            conn.execute("INSERT INTO meta VALUES ('written', 'yes')")

    writer = threading.Thread(target=audit_slowly)
    writer.start()
    assert inside.wait(10)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "the connection was closed under the other thread's transaction"
    go.set()
    writer.join(10)
    closer.join(10)
    assert not closer.is_alive()
    reopened = Store(tmp_path / "state.db")
    try:
        assert reopened.get_meta("written") == "yes"
    finally:
        reopened.close()
