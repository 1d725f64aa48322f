"""Faults, one by one, on real engines: a launcher killed half-way, the engine going away under
`ptdesk watch` (a private second dockerd, so the shared engine stays up), the engine being down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.engine.client import Engine
from tests.support.helpers import REPO, SSH_IMAGE, wait_until
from tests.support.lifecycle_support import (
    Watch,
    docker,
    held_gpus,
    hold_gpus,
    private_engine,
    private_engine_available,
    ptdesk_command,
    record,
)

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk


def test_launcher_killed_right_after_create_leaves_nothing_after_next_start(cli: Ptdesk, engine: Engine) -> None:
    """SIGKILL the moment the engine reports the container created, before ptdesk reported anything."""
    events = engine.events(cli.instance)
    created = threading.Event()

    def watch_create() -> None:
        for event in events:
            if event.get("Action") == "create":
                created.set()
                return

    follower = threading.Thread(target=watch_create, daemon=True)
    follower.start()
    proc = subprocess.Popen([*ptdesk_command(), "new", "ssh", "--name", "half", "--json"], env=cli.env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert created.wait(60), "the launcher never created its container"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        events.close()
    assert proc.returncode == -signal.SIGKILL
    # The kill left a container, a "launching" record and host-side secrets behind...
    assert [c["Labels"]["ptdesk.name"] for c in engine.list_managed(cli.instance)] == ["half"]
    assert record(cli.home, "half")["status"] == "launching"

    # ...which the next ptdesk start rolls back: no orphan container, no leaked record or secrets.
    rc, out, err = cli.run("ls", "--all", "--json", subprocess_=True)
    assert rc == 0, err
    assert out.strip() == "[]"
    assert "rolled back half" in err
    assert engine.list_managed(cli.instance) == []
    assert record(cli.home, "half") is None
    assert not cli.experiment_folder("half").exists()
    # The name is free again.
    assert cli.new("ssh", "--name", "half")["name"] == "half"


def test_commands_say_clearly_when_the_engine_is_down(cli: Ptdesk, tmp_path: Path) -> None:
    env = {**cli.env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    rc, out, err = cli.run("ls", "--json", subprocess_=True, extra_env=env)
    assert rc == 3
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("ptdesk: ") and "not reachable" in lines[0]
    assert lines[1].startswith("  hint: ") and "Traceback" not in err


@pytest.mark.skipif(private_engine_available() is not None, reason=str(private_engine_available()))
def test_watch_survives_an_engine_restart_and_cleans_up_what_vanished_meanwhile(cli: Ptdesk) -> None:
    with private_engine((SSH_IMAGE,)) as private:
        env = {**cli.env, "DOCKER_HOST": private.host}
        first = cli.new("ssh", "--name", "vanishes", extra_env=env)
        second = cli.new("ssh", "--name", "stays", extra_env=env)
        hold_gpus(cli.home, "vanishes", [0])
        hold_gpus(cli.home, "stays", [1])

        watch = Watch(env)
        try:
            watch.wait_engine(True)
            private.stop()
            down = watch.wait_for(lambda line: line.get("type") == "engine" and line.get("up") is False,
                                  timeout=30, what="the watcher to notice the engine went away")
            assert "not reachable" in down["reason"]
            # While the engine is down its container disappears for good (nothing will ever send a
            # destroy event for it): the engine forgets a container whose state folder is gone.
            data = private.root / "data" / "containers" / first["id"]
            subprocess.run(["rm", "-rf", str(data)], check=True)
            assert record(cli.home, "vanishes") is not None

            private.start()
            wait_until(lambda: record(cli.home, "vanishes") is None, timeout=60,
                       message="the reconcile after reconnecting to release the vanished experiment")
            assert not cli.experiment_folder("vanishes").exists()
            assert held_gpus(cli.home) == {1: "stays"}
            watch.wait_for(lambda line: line.get("type") == "reconcile" and "vanishes" in line.get("released", []),
                           what="the reconcile line")

            # It follows events again: removing the survivor is released at once.
            docker("rm", "-f", second["id"], env=private.env)
            wait_until(lambda: record(cli.home, "stays") is None and not cli.experiment_folder("stays").exists(),
                       timeout=2.0, message="the watcher to release after the restart")
            assert held_gpus(cli.home) == {}
        finally:
            assert watch.stop() == 0, watch.stderr()
