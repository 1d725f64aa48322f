"""Cleanup tied to the container's lifecycle, on the real engine: however a container goes away,
its host key, token, port and GPU reservation are released (by `ptdesk watch` at once, otherwise at
the next ptdesk start); lost records are adopted; idle experiments are stopped, never deleted.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.config import load_config
from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.base.durations import parse_duration
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.base.names import current_user
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments.cull import idle_gpus
from ptdesk.core.experiments.lifecycle import ContainerEvent, EventWatcher
from ptdesk.core.experiments.reconcile import reconcile
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.core.workstation import Workstation
from ptdesk.errors import InvalidInput, PtdeskError
from tests.support.helpers import SSH_IMAGE, wait_until
from tests.support.lifecycle_support import db, docker, held_gpus, hold_gpus, record, watching

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk


def released(cli: Ptdesk, name: str) -> bool:
    """Everything the container held is gone from the host: record (port, GPUs) and secrets folder."""
    return record(cli.home, name) is None and not cli.experiment_folder(name).exists()


def test_watch_releases_everything_when_containers_are_docker_rm_f(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "s1")
    jupyter = cli.new("jupyter", "--name", "j1")
    hold_gpus(cli.home, "s1", [0])
    hold_gpus(cli.home, "j1", [1])
    # What must be released exists first: the pinned host key, the token, the ports, the GPUs.
    assert (cli.experiment_folder("s1") / "ssh_host_ed25519_key.pub").is_file()
    assert (cli.experiment_folder("j1") / "jupyter_token").is_file()
    assert record(cli.home, "s1")["port"] == ssh["ssh"]["port"]
    assert record(cli.home, "j1")["port"] == jupyter["jupyter"]["port"]
    assert held_gpus(cli.home) == {0: "s1", 1: "j1"}

    with watching(cli.env) as watch:
        docker("rm", "-f", ssh["id"], jupyter["id"])
        removed = time.monotonic()
        wait_until(lambda: released(cli, "s1") and released(cli, "j1"), timeout=2.0,
                   message="the watcher to release both experiments")
        elapsed = time.monotonic() - removed
        assert held_gpus(cli.home) == {}
        watch.wait_for(lambda line: line.get("action") == "destroy" and line.get("name") == "s1"
                       and line.get("released"), what="the destroy line for s1")
    print(f"released both within {elapsed:.2f} s of docker rm -f")
    assert cli.listed() == {}
    conn = db(cli.home)
    actions = {(r["action"], r["target"]) for r in conn.execute("SELECT action, target FROM audit")}
    conn.close()
    assert {("released", "s1"), ("released", "j1")} <= actions


def test_without_a_watcher_the_next_ptdesk_start_releases(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "gone")
    hold_gpus(cli.home, "gone", [3])
    docker("rm", "-f", ssh["id"])
    assert record(cli.home, "gone") is not None  # nobody was watching

    rc, out, err = cli.run("ls", "--all", "--json", subprocess_=True)
    assert rc == 0, err
    assert json.loads(out) == []
    assert "released gone" in err
    assert released(cli, "gone")
    assert held_gpus(cli.home) == {}


def test_lost_record_is_adopted_with_the_host_key_read_from_the_container(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "lost")
    original = record(cli.home, "lost")
    conn = db(cli.home)
    conn.execute("DELETE FROM experiments WHERE name = 'lost'")
    conn.commit()
    conn.close()
    experiment_files.discard(cli.config, "lost")

    report = cli.json("reconcile")
    assert report["adopted"] == ["lost"] and report["orphans"] == []
    adopted = record(cli.home, "lost")
    assert adopted["container_id"] == ssh["id"]
    assert adopted["host_public_key"].split()[:2] == original["host_public_key"].split()[:2]
    assert (adopted["kind"], adopted["owner"], adopted["port"]) == ("ssh", original["owner"], original["port"])
    # Adopted means usable: the owner logs in with the host key pinned from what was read back.
    login = try_login("127.0.0.1", adopted["port"], "ptdesk", Path(ssh["ssh"]["identity_file"]),
                      adopted["host_public_key"])
    assert login.ok, login.detail
    assert cli.listed()["lost"]["ssh"]["host_key_fingerprint"] == ssh["ssh"]["host_key_fingerprint"]


def test_unlabelled_orphan_is_listed_and_ptdesk_rm_removes_it(cli: Ptdesk, engine: Engine) -> None:
    stray = f"ptdesk-{cli.instance}-stray"
    docker("create", "--name", stray, "--label", "ptdesk.managed=1", "--label", f"ptdesk.instance={cli.instance}",
           "--entrypoint", "true", SSH_IMAGE)
    assert cli.json("reconcile")["orphans"] == [stray]
    listed = cli.listed()
    assert listed[stray]["orphan"] is True
    cli.ok("rm", stray)
    assert engine.list_managed(cli.instance) == []
    assert cli.listed() == {}


def test_event_watcher_reports_events_and_stops_within_a_second(cli: Ptdesk, engine: Engine) -> None:
    """The API the dashboard uses: events arrive as ContainerEvents; stop ends run() promptly."""
    ws = Workstation(load_config(cli.env))
    events: list[ContainerEvent] = []
    states: list[tuple[bool, str | None]] = []
    stop = threading.Event()
    watcher = EventWatcher(ws, on_event=events.append, on_engine=lambda up, why: states.append((up, why)))
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: states == [(True, None)], timeout=10, message="the watcher to connect")
        ssh = cli.new("ssh", "--name", "ev")
        cli.ok("stop", "ev")
        wait_until(lambda: any(e.action == "die" and e.name == "ev" for e in events), timeout=5,
                   message="the die event")
        wait_until(lambda: record(cli.home, "ev")["status"] == "exited", timeout=5, message="status exited")
        start = next(e for e in events if e.action == "start")
        assert (start.name, start.container_id, start.kind) == ("ev", ssh["id"], "ssh")
        assert start.owner == ssh["owner"]
    finally:
        asked = time.monotonic()
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
        print(f"run() returned {time.monotonic() - asked:.2f} s after stop was set")
        assert time.monotonic() - asked < 2.0, "stop must end run() while it is blocked on the stream"
        ws.close()


def test_cull_stops_idle_ssh_but_not_one_with_a_session(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "idle")
    workspace = Path(record(cli.home, "idle")["workspace"])
    (workspace / "result.txt").write_text("keep me")
    wait_until(lambda: cli.json("cull", "--idle", "2s", "--dry-run")["experiments"][0]["idle_seconds"] >= 2,
               timeout=20, message="the ssh experiment to be idle for 2 s")

    # A logged-in user is activity: keep a session open while culling.
    import paramiko

    client = paramiko.SSHClient()
    key_type, blob = record(cli.home, "idle")["host_public_key"].split()[:2]
    port = ssh["ssh"]["port"]
    client.get_host_keys().add(f"[127.0.0.1]:{port}", key_type, paramiko.PKey.from_type_string(key_type,
                               __import__("base64").b64decode(blob)))
    client.connect("127.0.0.1", port=port, username="ptdesk", key_filename=ssh["ssh"]["identity_file"],
                   allow_agent=False, look_for_keys=False, timeout=10)
    try:
        client.exec_command("cat")  # lives exactly as long as the session (stdin closes with it)
        result = wait_until(lambda: (r := cli.json("cull", "--idle", "2s")["experiments"][0])["idle_seconds"] == 0
                            and r, timeout=10, message="the session to count as activity")
        assert result["culled"] is False
        assert cli.listed()["idle"]["status"] == "running"
    finally:
        client.close()

    culled = cli.json("cull", "--idle", "1d")["experiments"][0]  # just seen active: not culled
    assert culled["culled"] is False and culled["idle_seconds"] < 86400
    result = wait_until(lambda: (r := cli.json("cull", "--idle", "2s")["experiments"]) and r[0]["culled"] and r,
                        timeout=20, message="the idle experiment to be culled")
    assert result[0]["name"] == "idle"
    assert cli.listed()["idle"]["status"] == "exited"  # stopped, not removed
    assert (workspace / "result.txt").read_text() == "keep me"
    assert (cli.experiment_folder("idle") / "ssh_host_ed25519_key.pub").is_file()
    conn = db(cli.home)
    assert conn.execute("SELECT count(*) FROM audit WHERE action = 'cull' AND target = 'idle'").fetchone()[0] == 1
    conn.close()


def test_cull_measures_jupyter_activity(cli: Ptdesk, engine: Engine) -> None:
    jupyter = cli.new("jupyter", "--name", "nb")
    idle = lambda: cli.json("cull", "--idle", "1d", "--dry-run")["experiments"][0]["idle_seconds"]  # noqa: E731
    wait_until(lambda: idle() >= 2, timeout=30, message="Jupyter to report 2 s without activity")
    assert idle() >= 2  # asking (with no_track_activity) is not itself activity
    request = urllib.request.Request(f"http://127.0.0.1:{jupyter['jupyter']['port']}/api/contents",
                                     headers={"Authorization": f"token {jupyter['jupyter']['token']}"})
    urllib.request.urlopen(request, timeout=10).read()
    assert idle() < 2
    result = wait_until(lambda: (r := cli.json("cull", "--idle", "2s")["experiments"]) and r[0]["culled"] and r,
                        timeout=30, message="the notebook to be culled")
    assert result[0]["name"] == "nb"
    assert cli.listed()["nb"]["status"] == "exited"


def test_cull_without_a_limit_is_a_user_error(cli: Ptdesk) -> None:
    rc, out, err = cli.run("cull")
    assert rc == 1 and "No idle limit is set." in err and "hint:" in err
    with pytest.raises(InvalidInput):
        parse_duration("soon")
    assert parse_duration("4h") == 14400 and parse_duration("90s") == 90


def _gpu(util: int | None, used: int, procs: int = 0, uuid: str = "GPU-a", index: int = 0) -> GpuSample:
    return GpuSample(index=index, uuid=uuid, name="A100", utilization=util, memory_used=used,
                     memory_total=80 * 2**30, processes=tuple(GpuProcess(pid=100 + i, used_memory=2**30)
                                                              for i in range(procs)))


def test_idle_gpus_flags_memory_held_at_zero_utilisation_for_long() -> None:
    def snap(t: float, *gpus: GpuSample) -> GpuSnapshot:
        return GpuSnapshot(available=True, reason=None, driver="550", gpus=gpus, taken_at=t)

    history = [
        snap(0, _gpu(90, 40 * 2**30, 1), _gpu(0, 0, 0, "GPU-b", 1)),
        snap(100, _gpu(0, 40 * 2**30, 1), _gpu(0, 0, 0, "GPU-b", 1)),
        snap(2000, _gpu(0, 40 * 2**30, 1), _gpu(0, 0, 0, "GPU-b", 1)),
    ]
    # GPU 0 holds 40 GiB at 0 % since t=100; GPU 1 is idle but holds nothing: not flagged.
    assert idle_gpus(history, for_seconds=1800) == {"0": 1900}
    assert idle_gpus(history, for_seconds=3600) == {}
    # An unreadable sample is not idle: the run starts after it.
    broken = [*history[:2], snap(1000, _gpu(None, 40 * 2**30, 1)), history[2]]
    assert idle_gpus(broken, for_seconds=1800) == {}
    assert idle_gpus([]) == {}


# --- reconcile against races, garbage and other users -------------------------------------------
def test_a_stale_reconcile_pass_never_rolls_back_a_newer_launch_of_the_same_name(
        ws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two passes see the same dead launch; the first rolls it back, the user launches the name
    again; the second pass, still holding the old record, must leave the new launch alone."""
    dead = ExperimentRecord(name="again", kind="ssh", owner="alice", image="i", status="launching",
                            created=time.time() - 10_000, launcher_pid=2**22 + 1)  # long past any launch
    with ws.store.tx() as conn:
        ws.store.insert_experiment(conn, replace(dead, created=time.time(), launcher_pid=os.getpid()))
    experiment_files.write(ws.config, "again", "ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA new\n", 0o644)
    monkeypatch.setattr(ws.store, "experiments", lambda: [dead])  # what the second pass read before

    report = reconcile(ws)
    assert report.rolled_back == ()
    survivor = ws.store.experiment("again")
    assert survivor is not None and survivor.launcher_pid == os.getpid()
    assert experiment_files.read(ws.config, "again", "ssh_host_ed25519_key.pub") == "ssh-ed25519 AAAA new\n"


def test_a_malformed_gpu_label_is_listed_as_an_orphan_without_gpus(cli: Ptdesk, sleeper) -> None:
    sleeper("mine-bad", owner=current_user(), gpus="x")
    sleeper("theirs-bad", owner="someone-else", gpus="0,x")
    listed = cli.listed()
    assert listed["mine-bad"]["orphan"] is True and listed["mine-bad"]["gpus"] == []
    assert listed["theirs-bad"]["foreign"] is True and listed["theirs-bad"]["gpus"] == []
    assert "mine-bad" in cli.json("reconcile")["orphans"]
    assert cli.records() == set()


def test_the_event_watcher_survives_a_malformed_label_and_keeps_releasing(
        cli: Ptdesk, ws: Workstation, engine: Engine, sleeper) -> None:
    # Adoptable but for its GPU label, with a token to read back: the watcher's first reconcile meets it.
    garbage = sleeper("garbage", owner=current_user(), kind="jupyter", gpus="x",
                      script="mkdir -p /etc/ptdesk && printf token > /etc/ptdesk/jupyter_token && sleep 3600")
    wait_until(lambda: _readable(engine, garbage, "/etc/ptdesk/jupyter_token"), timeout=15, message="the token")
    events: list[ContainerEvent] = []
    stop = threading.Event()
    thread = threading.Thread(target=EventWatcher(ws, on_event=events.append).run, args=(stop,), daemon=True)
    thread.start()
    try:
        kept = sleeper("kept")
        wait_until(lambda: any(e.container_id == kept and e.action == "start" for e in events), timeout=15,
                   message="the watcher to follow events")
        with ws.store.tx() as conn:
            ws.store.insert_experiment(conn, ExperimentRecord(
                name="kept", kind="ssh", owner=current_user(), image="i", status="running",
                created=time.time(), container_id=kept, gpus=(1,)))
        experiment_files.write(ws.config, "kept", "known_hosts", "x\n")
        docker("rm", "-f", kept)
        wait_until(lambda: released(cli, "kept"), timeout=10, message="the watcher to release 'kept'")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=5)


def _readable(engine: Engine, container: str, path: str) -> bool:
    try:
        return bool(engine.read_file(container, path))
    except PtdeskError:
        return False


def test_listing_writes_nothing_and_start_pins_the_new_port(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "pinned")
    known = cli.experiment_folder("pinned") / "known_hosts"
    assert known.read_text() == ssh["ssh"]["known_hosts"] + "\n"  # written at launch
    known.unlink()
    cli.listed()
    assert not known.exists()  # a listing (racing `ptdesk rm`) must never (re)create secrets files
    cli.ok("stop", "pinned")
    started = cli.json("start", "pinned")
    assert known.read_text() == started["ssh"]["known_hosts"] + "\n"
    assert f"]:{started['ssh']['port']} " in known.read_text()


def test_adoption_keeps_the_keys_the_owner_brought(cli: Ptdesk, engine: Engine, keygen) -> None:
    mine = keygen("laptop")
    pub = mine.with_suffix(".pub").read_text().strip()
    ssh = cli.new("ssh", "--name", "brought", "--pubkey", mine.with_suffix(".pub"))
    conn = db(cli.home)
    conn.execute("DELETE FROM experiments WHERE name = 'brought'")
    conn.commit()
    conn.close()

    assert cli.json("reconcile")["adopted"] == ["brought"]
    assert json.loads(record(cli.home, "brought")["extra_keys"]) == [pub]  # not the owner's ptdesk key
    assert (cli.experiment_folder("brought") / "known_hosts").is_file()
    # A grant re-renders authorized_keys from the store: the brought key must survive it.
    cli.ok("collab", "add", "carol")
    cli.ok("grant", "carol", "brought")
    host_key = record(cli.home, "brought")["host_public_key"]
    login = try_login("127.0.0.1", ssh["ssh"]["port"], "ptdesk", mine, host_key)
    assert login.ok, login.detail


def test_a_lost_store_brings_collaborators_back_as_collaborators(cli: Ptdesk, engine: Engine) -> None:
    """Before, adoption kept every collaborator key without an expiry as an "owner-brought" key:
    `collab ls` showed nobody, revoke and rotate could not remove it, and each render put it back.
    Now the marker ptdesk writes on collaborator lines brings them back as collaborators."""
    ssh = cli.new("ssh", "--name", "shared-box")
    kim = cli.json("collab", "add", "kim")  # no expiry: exactly the case that became invisible
    cli.ok("grant", "kim", "shared-box")
    (cli.home / "state.db").unlink()  # the store is lost; keys/ (with the seal) survives
    for leftover in cli.home.glob("state.db-*"):
        leftover.unlink()

    assert cli.json("reconcile")["adopted"] == ["shared-box"]
    people = {p["name"]: p for p in cli.json("collab", "ls")}
    assert people["kim"]["grants"] == ["shared-box"] and people["kim"]["fingerprint"] == kim["fingerprint"]
    assert people["kim"]["identity_file"] == kim["identity_file"]  # the key ptdesk made is hers again
    assert json.loads(record(cli.home, "shared-box")["extra_keys"]) == []  # not a permanent key
    host_key = record(cli.home, "shared-box")["host_public_key"]
    assert try_login("127.0.0.1", ssh["ssh"]["port"], "kim", Path(kim["identity_file"]), host_key).ok

    cli.ok("revoke", "kim", "shared-box")  # and she can be shown out for real
    refused = try_login("127.0.0.1", ssh["ssh"]["port"], "kim", Path(kim["identity_file"]), host_key)
    assert refused.detail.startswith("refused"), refused.detail
