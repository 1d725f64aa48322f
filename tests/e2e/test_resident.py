"""A resident ptdesk (`ptdesk serve`) answering `ptdesk ls`: same output as the direct path, only
for the same settings and user, and the CLI never depends on it."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ptdesk.commands.common import reconcile_quietly
from ptdesk.core.admin.resident import ResidentServer
from tests.support.helpers import wait_until

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

pytestmark = pytest.mark.engine


@pytest.fixture
def server(cli: Ptdesk) -> Iterator[ResidentServer]:
    resident = ResidentServer(cli.config, reconcile_quietly, cli.env)
    stop = threading.Event()
    thread = threading.Thread(target=resident.serve, args=(stop,), daemon=True)
    thread.start()
    wait_until(resident.path.exists, timeout=10, message="the resident socket")
    yield resident
    stop.set()
    thread.join(10)


def test_ls_answered_by_the_resident_is_the_direct_answer(cli: Ptdesk, server: ResidentServer) -> None:
    cli.new("ssh", "--name", "res1", "--cpus", "1")
    served = server.served
    resident = cli.json("ls", "--all", subprocess_=True)
    assert server.served == served + 1
    assert [e["name"] for e in resident] == ["res1"] and resident[0]["workstation"] == "local"
    human = cli.ok("ls", subprocess_=True)
    assert "res1" in human and "CONNECT" in human
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    # Other settings (here config.toml changed): the server declines and the CLI lists by itself.
    (cli.home / "config.toml").write_text('bind_address = "127.0.0.1"\n')
    served = server.served
    assert cli.json("ls", "--all", subprocess_=True) == resident
    assert server.served == served
    cli.ok("rm", "res1", "--force")


def test_a_dead_resident_socket_is_not_a_failure(cli: Ptdesk) -> None:
    folder = cli.home / "run"
    folder.mkdir(parents=True, mode=0o700)
    (folder / "ptdesk.sock").write_text("")  # what a killed server can leave behind
    assert json.loads(cli.ok("ls", "--json", subprocess_=True)) == []
