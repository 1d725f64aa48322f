"""Revoke that cannot be outrun: a person's processes end in one kernel pass, and stay ended.

A collaborator leaves behind what a ps-then-kill loop cannot catch: a chain that forks its successor
and exits, with shell builtins only (thousands of generations a second), and a double-forked daemon.
After revoke, a rotation that retires the old key, and expiry, none of it runs. A process a revoked
uid starts afterwards (placed by root as that uid: what slipped past an earlier end) is ended by
the next reconcile.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.engine.client import Engine
from tests.support.accounts_support import account_pids, person
from tests.support.helpers import wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk

pytestmark = pytest.mark.engine

# Four chains whose every generation forks the next and exits, with shell builtins only (dash's eval:
# no function nesting limit), detached from the login. A ps-then-kill loop lists pids already gone.
HOPPER = (r"""for n in 1 2 3 4; do setsid nohup sh -c 'c="eval \"\$c\" &"; eval "$c"' """
          ">/dev/null 2>&1 </dev/null & done")
DAEMON = "setsid nohup sh -c '(sleep 600 &) &' >/dev/null 2>&1 </dev/null &"


@pytest.fixture(scope="module")
def box(module_desk: Ptdesk) -> dict:
    return module_desk.new("ssh", "--name", "hops", "--cpus", "1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("people")


def _leave_running(desk: Ptdesk, engine: Engine, box: dict, name: str, folder: Path,
                   add_args: tuple[str, ...] = ()) -> None:
    who = person(desk, name, folder, "hops", add_args=add_args)
    for command in (HOPPER, DAEMON):
        assert who.ssh("hops", command).returncode == 0
    wait_until(lambda: len(account_pids(engine, box["id"], name)) >= 2, timeout=15,
               message=f"{name}'s hopper and daemon")


def _gone(desk: Ptdesk, engine: Engine, box: dict, name: str) -> None:
    assert account_pids(engine, box["id"], name) == []
    desk.ok("ls")  # a round trip later: no generation of the chain was left to fork again
    assert account_pids(engine, box["id"], name) == []


def test_revoke_ends_a_fork_hopping_chain_and_a_double_forked_daemon(module_desk: Ptdesk, engine: Engine,
                                                                      box: dict, folder: Path) -> None:
    _leave_running(module_desk, engine, box, "hopper", folder)
    out = module_desk.ok("revoke", "hopper", "hops")
    assert "ended" in out, out
    _gone(module_desk, engine, box, "hopper")


def test_rotating_a_compromised_key_away_ends_them_too(module_desk: Ptdesk, engine: Engine, box: dict,
                                                      folder: Path) -> None:
    """--end-sessions (a compromised key): ended as revoke ends them (a routine rotation keeps them)."""
    _leave_running(module_desk, engine, box, "rotated", folder)
    result = module_desk.json("collab", "rotate", "rotated", "--end-sessions")
    assert "ended" in result["containers"][0]["detail"], result
    _gone(module_desk, engine, box, "rotated")


def test_expiry_ends_them_too(module_desk: Ptdesk, engine: Engine, box: dict, folder: Path) -> None:
    _leave_running(module_desk, engine, box, "lapsed", folder, add_args=("--expires", "15s"))
    record = module_desk.json("collab", "ls")
    expires = datetime.fromisoformat(next(c["expires"] for c in record if c["name"] == "lapsed")).timestamp()
    wait_until(lambda: time.time() > expires + 1, timeout=40, message="the expiry to pass")
    report = module_desk.json("reconcile")
    assert any(line.startswith("lapsed in hops:") for line in report.get("ended", [])), report
    _gone(module_desk, engine, box, "lapsed")


def test_a_later_reconcile_ends_what_a_revoked_uid_started_in_between(module_desk: Ptdesk, engine: Engine,
                                                                       box: dict, folder: Path) -> None:
    person(module_desk, "late", folder, "hops")
    module_desk.ok("revoke", "late", "hops")
    uid = int(engine.exec(box["id"], ["id", "-u", "late"])[1])
    rc, out = engine.exec(box["id"], ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                                      "sh", "-c", "nohup sleep 600 >/dev/null 2>&1 </dev/null &"])
    assert rc == 0, out
    assert account_pids(engine, box["id"], "late")
    report = module_desk.json("reconcile")
    assert any(line.startswith("late in hops:") for line in report.get("ended", [])), report
    assert account_pids(engine, box["id"], "late") == []
    # A granted person's processes are theirs to keep.
    keeper = person(module_desk, "keeper", folder, "hops")
    assert keeper.ssh("hops", DAEMON).returncode == 0
    wait_until(lambda: account_pids(engine, box["id"], "keeper"), timeout=15, message="keeper's daemon")
    module_desk.json("reconcile")
    assert account_pids(engine, box["id"], "keeper")
