"""Several ptdesk processes at once, as on a shared workstation: no duplicate names or ports, no
"database is locked" reaching anyone, and every launch proven ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

from ptdesk.core.engine.client import Engine
from tests.support.helpers import REPO
from tests.support.lifecycle_support import ptdesk_command

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk

PARALLEL = 10


def test_ten_parallel_new_ssh_get_ten_distinct_names_and_ports(cli: Ptdesk, engine: Engine) -> None:
    # Generous readiness on a loaded 2-core box: ten sshd start at once next to other test runs.
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text("ready_timeout = 240\n")
    # No --name: every process suggests "<owner>-ssh-1" at first; the launcher must sort that out.
    procs = [subprocess.Popen([*ptdesk_command(), "new", "ssh", "--json"], env=cli.env, cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(PARALLEL)]
    # Readers run against the same store meanwhile.
    readers = [subprocess.Popen([*ptdesk_command(), "ls", "--all", "--json"], env=cli.env, cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(p.wait(timeout=400), *p.communicate()) for p in procs]
    for reader in readers:
        _, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
    for rc, _out, err in results:
        assert rc == 0, err
        assert "locked" not in err and "Traceback" not in err
    launched = [json.loads(out) for _, out, _ in results]
    names = {e["name"] for e in launched}
    ports = {e["ssh"]["port"] for e in launched}
    assert len(names) == PARALLEL and len(ports) == PARALLEL
    containers = engine.list_managed(cli.instance)
    assert len(containers) == PARALLEL
    assert {c["Labels"]["ptdesk.name"] for c in containers} == names
    listed = cli.listed()
    assert set(listed) == names and all(e["status"] == "running" for e in listed.values())
    # One owner key for all of them (made once, not raced into a mismatched pair).
    assert len({e["ssh"]["identity_file"] for e in launched}) == 1


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ptdesk.core.store.state import Store
    store = Store(Path(sys.argv[1]))
    for i in range(150):
        store.set_meta(f"load.{sys.argv[2]}.{i}", str(i))
        store.audit("load", sys.argv[2], {"i": i})
        store.experiments()
    store.close()
""")


def test_store_under_write_load_from_many_processes_never_reports_locked(tmp_path) -> None:
    path = tmp_path / "home" / "state.db"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(8)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    from ptdesk.core.store.state import Store

    store = Store(path)
    try:
        assert len([e for e in store.audit_log() if e.action == "load"]) == 8 * 150
    finally:
        store.close()
