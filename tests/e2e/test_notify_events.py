"""Today's events, said once per box: an out-of-memory kill inside a running experiment (with its
limit, through a real webhook), a collaborator's access expiring tomorrow, the engine lost and
back. Two watchers of one box (two Workstations with their own engine clients) say each once."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import websocket
from rich.console import Console

from ptdesk.config import load_config
from ptdesk.core.base import clock
from ptdesk.core.engine.client import Engine
from ptdesk.core.notify import once
from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import announce
from ptdesk.core.workstation import Workstation
from ptdesk.tui.screens.details import details_table
from ptdesk.tui.widgets.experiments_table import cells
from tests.support.accounts_support import person
from tests.support.helpers import run_cli, wait_until
from tests.support.lifecycle_support import watching
from tests.support.receivers import free_port, webhook_server

HOG = "x=0123456789abcdef; while :; do x=$x$x; done"  # a shell that outgrows any limit


@pytest.fixture
def two_watchers(ptdesk_env: dict[str, str], engine: Engine):
    """Two watchers of one box; their markers carry the test's instance, so teardown removes them."""
    first = Workstation(load_config(ptdesk_env))
    second = first.fork()
    yield first, second
    first.close()
    second.close()


def test_an_oom_kill_inside_a_running_experiment_is_said_once_naming_its_limit(
        ptdesk_env: dict[str, str], engine: Engine, two_watchers) -> None:
    first, second = two_watchers
    with webhook_server() as (url, posts):
        assert run_cli(["notify", "add", "hook", "--events", "oom"], ptdesk_env, input=url + "\n")[0] == 0
        code, _, err = run_cli(["new", "ssh", "--name", "oomy", "--memory", "64m", "--gpus", "none"], ptdesk_env)
        assert code == 0, err
        assert first.herald().round() == []  # nothing killed yet: nothing said
        container = first.store.experiment("oomy").container_id
        rc, _ = engine.exec(container, ["sh", "-c", HOG], user="root")
        assert rc == 137 and engine.is_running(container)  # the hog died, the experiment runs on
        said = [*first.herald().round(), *second.herald().round(), *first.herald().round()]
    assert len(said) == 1 and said[0].notice.event == "oom"
    assert [d.ok for d in said[0].deliveries] == [True]
    assert len(posts) == 1 and posts[0]["title"] == "ptdesk: 'oomy' ran out of memory"
    assert "killed: out of memory (limit 64m)" in posts[0]["message"]
    assert "--memory" in posts[0]["message"] and "[limits] memory" in posts[0]["message"]
    # The dashboard says it too: in the row's status and in the details (i), with the limit.
    stats = first.container_stats([container])[container]
    experiment = first.experiment("oomy")
    assert stats.oom_kills == 1 and cells(experiment, stats, time.time())[4].plain == "running oom×1"
    console = Console(record=True, width=300)
    console.print(details_table(experiment, stats.oom_kills))
    details = console.export_text()
    assert "Out of memory" in details and "killed: out of memory (limit 64m)" in details


def test_markers_past_their_time_go_when_any_event_is_said(two_watchers, monkeypatch) -> None:
    """No `ptdesk watch` running: the markers of job ends (a day) still do not pile up."""
    first, second = two_watchers
    now = time.time()
    monkeypatch.setattr(clock, "now", lambda: now - 2 * 86400)
    assert once.first_to_say(first, "job:local:old") and once.first_to_say(first, "oom:c:1")
    monkeypatch.setattr(clock, "now", lambda: now)
    said = announce(second, "job:local:new", Notice("job", "ptdesk: job 'new' succeeded", "body"))
    assert said is not None and announce(first, "job:local:new", said.notice) is None
    left = {c["Names"][0] for c in first.engine.labelled(once.LABEL_SAID)}
    assert "/" + once.marker_name(first, "job:local:old") not in left  # a day old: gone
    assert "/" + once.marker_name(first, "oom:c:1") in left  # kept a month: still there


def test_an_access_expiring_tomorrow_is_said_once_and_not_before(
        ptdesk_env: dict[str, str], two_watchers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first, second = two_watchers
    pub = tmp_path / "bob.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPs7nnTq1CSm0cJ6rJqyPQB7hf6iqZLXk0EvFhJbkDuV bob\n")
    assert run_cli(["collab", "add", "bob", "--pubkey", pub, "--expires", "3d"], ptdesk_env)[0] == 0
    start = time.time()
    assert first.herald().round() == []  # three days ahead: not yet
    monkeypatch.setattr(clock, "now", lambda: start + 2.5 * 86400)  # half a day before it ends
    said = [*first.herald().round(), *second.herald().round()]
    assert len(said) == 1 and said[0].notice.title == "ptdesk: bob's access expires in 12 h"
    assert "ptdesk collab rotate bob --expires" in said[0].notice.body


def test_the_engine_lost_and_back_is_said_once_each(ptdesk_env: dict[str, str], two_watchers) -> None:
    first, second = two_watchers
    assert first.herald().engine_changed(True) is None  # a watcher starting on a live engine: nothing
    lost = [first.herald().engine_changed(False, "connection refused"),
            second.herald().engine_changed(False, "connection refused")]
    back = [second.herald().engine_changed(True), first.herald().engine_changed(True)]
    assert [s.notice.title for s in lost if s] == ["ptdesk: workstation 'local' lost its engine"]
    assert "connection refused" in lost[0].notice.body
    assert [s.notice.title for s in back if s] == ["ptdesk: workstation 'local' is back"]


def test_ptdesk_watch_says_an_oom_kill_and_a_failing_route_once(ptdesk_env: dict[str, str], engine: Engine) -> None:
    dead = f"json://127.0.0.1:{free_port()}/nobody"
    assert run_cli(["notify", "add", "dead"], ptdesk_env, input=dead + "\n")[0] == 0
    assert run_cli(["new", "ssh", "--name", "hog", "--memory", "64m", "--gpus", "none"], ptdesk_env)[0] == 0
    container = Workstation(load_config(ptdesk_env)).store.experiment("hog").container_id
    with watching(ptdesk_env) as watch:
        assert engine.exec(container, ["sh", "-c", HOG])[0] == 137
        said = watch.wait_for(lambda line: line.get("type") == "notify", what="the oom notice")
        failed = watch.wait_for(lambda line: line.get("type") == "route-failed", what="the route failure")
        assert engine.exec(container, ["sh", "-c", HOG])[0] == 137  # a second kill: said, the route not again
        watch.wait_for(lambda line: line.get("type") == "notify" and "2 processes" in line["body"],
                       what="the second oom notice")
        watch.stop()
        watch.wait_for(lambda line: line.get("type") == "stop", what="its last line")  # everything it said
    assert said["event"] == "oom" and "(limit 64m)" in said["body"] and said["routes"] == [
        {"route": "dead", "ok": False, "reason": "A Connection error occurred sending JSON notification to 127.0.0.1."}]
    assert failed["route"] == "dead" and dead not in json.dumps(watch.seen)
    assert [line["type"] for line in watch.seen].count("route-failed") == 1


def test_a_collaborator_hears_their_access_expiring_in_their_open_ssh_session(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.new("ssh", "--name", "shared", "--gpus", "none")
    bob = person(cli, "bob", tmp_path, "shared", add_args=("--expires", "3d"))
    # A real OpenSSH client with a terminal, as bob leaves it open (-tt: a pty in the container).
    session = subprocess.Popen(["ssh", "-tt", "-F", str(bob.config), "-o", "BatchMode=yes", "shared",
                                "echo READY; sleep 120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: session.stdout.read1(4096), b"")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: b"READY" in b"".join(seen), timeout=30, message="bob's session")
        owner = Workstation(cli.config)
        start = time.time()
        monkeypatch.setattr(clock, "now", lambda: start + 2.5 * 86400)
        said = owner.herald().round()
        assert [s.notice.event for s in said] == ["expiry"]
        def shown() -> str | None:
            out = b"".join(seen).decode(errors="replace")
            return out if "Your access to this experiment ends at" in out else None

        text = wait_until(shown, timeout=15, message="the warning in bob's terminal")
        assert "Broadcast message from ptdesk" in text and "Ask its owner to extend it" in text
        owner.close()
    finally:
        session.kill()
        session.wait()


def test_a_jupyter_kernel_killed_by_the_memory_limit_shows_in_its_row_and_is_said(cli, engine: Engine) -> None:
    lab = cli.new("jupyter", "--name", "nb", "--memory", "512m", "--gpus", "none")
    access = lab["jupyter"]
    base = f"http://{access['host']}:{access['port']}"
    request = urllib.request.Request(f"{base}/api/kernels", data=b'{"name": "python3"}', method="POST",
                                     headers={"Authorization": f"token {access['token']}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        kernel_id = json.loads(response.read())["id"]
    channel = websocket.create_connection(
        f"ws://{access['host']}:{access['port']}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
        header=[f"Authorization: token {access['token']}"], timeout=60)
    try:  # a notebook cell that needs more than the limit: the kernel is killed, the server lives on
        channel.send(json.dumps({
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "x = b'x' * (1024**3)", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        ws = Workstation(cli.config)
        container = ws.store.experiment("nb").container_id
        stats = wait_until(lambda: (s := ws.container_stats([container])[container]).oom_kills and s, timeout=60,
                           message="the kernel to be killed")
    finally:
        channel.close()
    assert engine.is_running(container)
    assert cells(ws.experiment("nb"), stats, time.time())[4].plain == "running oom×1"
    console = Console(record=True, width=300)  # and its details (i) name the limit and what raises it
    console.print(details_table(ws.experiment("nb"), stats.oom_kills))
    details = console.export_text()
    assert "killed: out of memory (limit 512m)" in details and "[limits] memory" in details
    [said] = ws.herald().round()
    assert said.notice.title == "ptdesk: 'nb' ran out of memory" and "(limit 512m)" in said.notice.body
    ws.close()
