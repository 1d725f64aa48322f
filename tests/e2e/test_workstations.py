"""Several workstations: a second, separate Docker engine reached through a real sshd over ssh://.

The remote (tests/support/remote_box.py) is started by this module's setup and removed at its end. The
ptdesk home of the module knows it as workstation `box` (pinned with `workstations add --yes`); the
local engine stays `local`. Each test checks both sides: what happened on the remote, and that
nothing was made on the other.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from ptdesk.config import load_config
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import SAMPLER_IMAGE, remove_instance_containers, require_image, settle, wait_until
from tests.support.remote_box import RemoteBox
from tests.support.vscode_support import server_tarball
from tests.support.workday_support import ptdesk_script

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

pytestmark = pytest.mark.engine
BOX_TZ = "Asia/Kolkata"  # UTC+05:30 all year (no daylight saving to make the test depend on the date)


@pytest.fixture(scope="module")
def box() -> Iterator[RemoteBox]:
    remote = RemoteBox(tz=BOX_TZ).start()  # another zone than this machine's: its times are the box's
    yield remote
    remote.stop()


@pytest.fixture(scope="module")
def box_engine(box: RemoteBox) -> Iterator[Engine]:
    """The remote engine on its own socket, for the tests' own checks (not how ptdesk reaches it)."""
    eng = Engine(docker.DockerClient(base_url=box.docker_host, version="1.41"))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def desk(module_desk: Ptdesk, box: RemoteBox, box_engine: Engine) -> Iterator[Ptdesk]:
    out = module_desk.ok("workstations", "add", "box", box.engine_url, "--identity", box.client_key, "--yes")
    assert "connected: Docker" in out, out
    yield module_desk
    remove_instance_containers(box_engine, module_desk.instance)


def on_box(desk: Ptdesk, box_engine: Engine) -> list[dict]:
    """The experiments' containers there (a GPU sampler is ptdesk's too, but no experiment)."""
    return box_engine.api.containers(all=True, filters={"label": [f"ptdesk.instance={desk.instance}",
                                                                  "ptdesk.managed=1"]})


def box_records(desk: Ptdesk) -> set[str]:
    """Experiment names in the box's own store, read directly."""
    conn = sqlite3.connect(f"file:{desk.home / 'workstations' / 'box' / 'state.db'}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM experiments")}
    finally:
        conn.close()


def on_local(desk: Ptdesk, engine: Engine) -> list[dict]:
    return engine.api.containers(all=True, filters={"label": f"ptdesk.instance={desk.instance}"})


def test_add_pins_the_host_key_in_ptdesks_own_known_hosts(desk: Ptdesk, box: RemoteBox) -> None:
    known = desk.home / "keys" / "workstations" / "known_hosts"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    listed = {w["workstation"]: w for w in desk.json("workstations", "ls")}
    assert set(listed) == {"local", "box"}
    offered = subprocess.run(["ssh-keygen", "-lf", f"{box.host_key}"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert listed["box"]["host_key"] == offered  # what ssh-keygen says about the server's own key
    assert desk.json("workstations", "test")[0]["ok"] is True


def test_add_without_yes_asks_and_a_no_changes_nothing(box: RemoteBox, tmp_path: Path) -> None:
    from tests.support.helpers import run_cli

    env = {"PTDESK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    rc, out, err = run_cli(["workstations", "add", "box", box.engine_url, "--identity", str(box.client_key)],
                           env, input="n\n")
    assert rc != 0 and "SHA256:" in out and "Not pinned; nothing was changed." in err
    assert not (tmp_path / "home" / "config.toml").exists()
    assert not (tmp_path / "home" / "keys" / "workstations" / "known_hosts").exists()


def test_ssh_experiment_on_the_remote_lists_logs_stops_starts_and_goes(
        desk: Ptdesk, box_engine: Engine, engine: Engine) -> None:
    made = desk.new("ssh", "--on", "box", "--name", "r-ssh", "--cpus", "1")
    assert made["workstation"] == "box" and made["status"] == "running"
    assert [c["Id"] for c in on_box(desk, box_engine)] == [made["id"]]
    assert on_local(desk, engine) == []  # nothing on the other engine
    listed = {(e["workstation"], e["name"]) for e in desk.json("ls", "--all")}
    assert ("box", "r-ssh") in listed
    # The connect line names the workstation's address and really logs in (OpenSSH, pinned key).
    access = made["ssh"]
    assert access["host"] == "127.0.0.1"
    login = subprocess.run([*access["command"].split(), "id", "-un"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    assert login.returncode == 0 and login.stdout.strip() == "ptdesk", login.stderr
    assert desk.run("logs", "r-ssh", "--on", "box", "--tail", "5")[0] == 0
    # `ptdesk ssh` and ptdesk's ssh config for that workstation name its address and pinned key.
    rc, out, err = desk.run("ssh", "--on", "box", "r-ssh", "id", "-un", subprocess_=True)
    assert rc == 0 and out.strip() == "ptdesk", err
    state = desk.json("ssh-config", "--on", "box")
    assert state["workstation"] == "box" and str(desk.home / "workstations" / "box" / "ssh") in state["path"]
    assert state["hosts"] == ["r-ssh.box"] and "HostName 127.0.0.1" in Path(state["path"]).read_text()
    desk.ok("stop", "r-ssh", "--on", "box")
    assert desk.json("ls", "--all", "--on", "box")[0]["status"] != "running"
    started = desk.json("start", "r-ssh", "--on", "box")
    assert started["status"] == "running" and started["workstation"] == "box"
    desk.ok("rm", "r-ssh", "--on", "box", "--force")
    assert on_box(desk, box_engine) == []
    assert desk.json("ls", "--all", "--on", "box") == []
    assert not (desk.home / "workstations" / "box" / "experiments" / "r-ssh").exists()


def test_a_job_runs_on_the_remote_with_its_snapshot_and_is_kept_there(desk: Ptdesk, box_engine: Engine,
                                                                       engine: Engine, tmp_path: Path) -> None:
    """`ptdesk run --on box`: the code snapshot travels over the same connection (no shared
    folder), the job runs there, and its record and log are the box's (jobs --on box), listed by a
    plain `ptdesk jobs` with every workstation's."""
    code = tmp_path / "remote-code"
    code.mkdir()
    (code / "msg").write_text("from the laptop\n")
    rc, out, err = desk.run("run", "--on", "box", "--name", "r-job", "--gpus", "none", "--cpus", "1", "--code", code,
                            "--wait", "--", "sh", "-c", "cat msg; exit 4")
    assert rc == 4, err
    assert "from the laptop" in out and "r-job failed (exit 4 after" in err
    listed = {j["name"]: j for j in desk.json("jobs", "--on", "box")}
    assert (listed["r-job"]["workstation"], listed["r-job"]["status"]) == ("box", "failed")
    assert "r-job" not in {j["name"] for j in desk.json("jobs", "--on", "local")}  # not the local box's
    # Without --on, every workstation's jobs, each said where it ran (as `ptdesk ls` does).
    everywhere = {j["name"]: j for j in desk.json("jobs")}
    assert everywhere["r-job"]["workstation"] == "box" and everywhere["r-job"]["exit_code"] == 4
    table = desk.ok("jobs").splitlines()
    assert table[0].split()[0] == "WORKSTATION"
    assert next(line for line in table if " r-job " in f" {line} ").split()[:2] == ["box", "r-job"]
    assert "WORKSTATION" not in desk.ok("jobs", "--on", "box")  # one workstation: no column for it
    assert desk.ok("logs", "r-job", "--on", "box").strip() == "from the laptop"
    assert not [c for c in box_engine.list_managed(desk.instance) if c["Labels"].get("ptdesk.name") == "r-job"]
    # Forgotten, it leaves nothing for the module's later tests (an ended job is a dashboard row).
    assert "Forgot 1" in desk.ok("jobs", "--prune", "--on", "box")
    assert desk.json("jobs", "--on", "box") == []


def test_the_same_name_on_two_workstations_reaches_each_box_by_its_own_alias(
        desk: Ptdesk, tmp_path: Path) -> None:
    """`ssh NAME`, `ptdesk ssh NAME`, the listing and the installed ssh configs all agree on which
    box a name reaches; a name that looks like a host never becomes a bare alias."""
    home = {"HOME": str(tmp_path)}
    local = desk.new("ssh", "--name", "twin", "--cpus", "1")
    rc, out, err = desk.run("new", "ssh", "--on", "box", "--name", "twin", "--cpus", "1", "--json", subprocess_=True)
    assert rc == 0, err
    remote = json.loads(out)
    assert "local already has an experiment named 'twin'" in err
    assert "`ssh twin.box` (and `ptdesk ssh twin.box`) reaches this one on box; `ssh twin` the one on local" in err, err
    desk.new("ssh", "--name", "github.com", "--cpus", "1")
    for where in ("local", "box"):  # both Includes, as a person with two boxes has them
        desk.ok("ssh-config", "--install", "--on", where, extra_env=home)
    user_config = tmp_path / ".ssh" / "config"

    def resolved(host: str) -> dict[str, str]:
        out = subprocess.run(["ssh", "-F", str(user_config), "-G", host], capture_output=True, text=True,
                             check=True).stdout
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)

    assert resolved("twin")["port"] == str(local["ssh"]["port"])
    assert resolved("twin.box")["port"] == str(remote["ssh"]["port"])
    assert resolved("github.com")["hostname"] == "github.com"  # git push still goes to GitHub
    assert resolved("github.com.local")["hostname"] == "127.0.0.1"
    # The listing says the alias that really reaches each row.
    connect = {(e["workstation"], e["name"]): e["ssh"]["command"] for e in desk.json("ls", extra_env=home)}
    assert connect[("local", "twin")] == "ssh twin" and connect[("box", "twin")] == "ssh twin.box"
    assert connect[("local", "github.com")] == "ssh github.com.local"
    # `ptdesk ssh` takes the same aliases and reaches the same boxes.
    assert desk.run("ssh", "--on", "box", "twin", "touch", "/tmp/on-box", subprocess_=True)[0] == 0
    rc, out, err = desk.run("ssh", "twin.box", "ls", "/tmp", subprocess_=True)
    assert rc == 0 and "on-box" in out, err
    rc, out, err = desk.run("ssh", "twin", "ls", "/tmp", subprocess_=True)
    assert rc == 0 and "on-box" not in out, err
    for name, where in (("twin", "local"), ("twin", "box"), ("github.com", "local")):
        desk.ok("rm", name, "--on", where, "--force")


def test_a_failed_remote_launch_leaves_nothing_on_either_side(desk: Ptdesk, box_engine: Engine,
                                                             engine: Engine) -> None:
    rc, out, err = desk.run("new", "ssh", "--on", "box", "--name", "r-bad", "--image", "ptdesk/none:missing")
    assert rc != 0 and "Traceback" not in err
    assert "ptdesk: Workstation box: Image ptdesk/none:missing is not on this engine." in err
    assert on_box(desk, box_engine) == [] and on_local(desk, engine) == []
    assert "r-bad" not in {e["name"] for e in desk.json("ls", "--all")}
    assert not (desk.home / "workstations" / "box" / "experiments" / "r-bad").exists()
    assert not (desk.home / "workstations" / "box" / "workspaces" / "r-bad").exists()


def test_the_vscode_server_cache_lives_on_the_workstation_it_was_added_to(
        desk: Ptdesk, box_engine: Engine, engine: Engine, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    tarball = server_tarball(tmp_path / "vscode-server-linux-x64.tar.gz", commit)
    volume = f"ptdesk-{desk.instance}-vscode-server"
    try:
        desk.ok("vscode", "add", tarball, "--on", "box")  # copied over the SSH connection, placed by the box's engine
        assert box_engine.volume(volume) is not None and engine.volume(volume) is None
        assert [c["commit"] for c in desk.json("vscode", "status", "--on", "box")["cached"]] == [commit]
        assert desk.json("vscode", "status")["cached"] == []  # local has none
    finally:
        box_engine.remove_volume(volume)


def test_jupyter_on_the_remote_answers_with_its_token_only(desk: Ptdesk, box_engine: Engine) -> None:
    made = desk.new("jupyter", "--on", "box", "--name", "r-lab", "--cpus", "1")
    access = made["jupyter"]
    request = urllib.request.Request(f"http://{access['host']}:{access['port']}/api/status",
                                     headers={"Authorization": f"token {access['token']}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and "started" in json.loads(answer.read())
    assert "r-lab" in {c["Labels"]["ptdesk.name"] for c in on_box(desk, box_engine)}
    logs = desk.ok("logs", "r-lab", "--on", "box", "--tail", "all")
    assert "Jupyter" in logs and access["token"] not in logs
    # Its port is on the box's loopback: from a laptop, `ptdesk forward` opens its URL here.
    assert access["forward"] == "ptdesk forward r-lab --on box"
    assert status_through_forward(desk, ("r-lab", "--on", "box"), access["token"]) == 200
    desk.ok("rm", "r-lab", "--on", "box", "--force")
    assert "r-lab" not in {c["Labels"]["ptdesk.name"] for c in on_box(desk, box_engine)}


def status_through_forward(desk: Ptdesk, args: tuple[str, ...], token: str) -> int:
    """`ptdesk forward ARGS` as a person runs it: the URL it prints, asked for /api/status, then Ctrl-C."""
    proc = subprocess.Popen([ptdesk_script(), "forward", *args], env=desk.env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once the tunnel listens
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/lab?token={token}"), url
        return http_status(url.split("/lab?")[0] + "/api/status", token)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, err


def http_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_jupyter_url_on_a_loopback_bind_says_how_to_open_it_from_the_laptop(
        desk: Ptdesk, box: RemoteBox, tmp_path: Path) -> None:
    """ptdesk on the workstation, reached over SSH (the box's sshd stands in for the workstation's):
    the launch prints the `ssh -L` line that the person's laptop runs, and that line really works."""
    over_ssh = {"SSH_CONNECTION": f"127.0.0.1 50000 127.0.0.1 {box.port}", "USER": box.user}
    made = desk.new("jupyter", "--name", "l-lab", "--cpus", "1", extra_env=over_ssh)["jupyter"]
    port, token = made["port"], made["token"]
    assert made["tunnel"] == f"ssh -N -L {port}:127.0.0.1:{port} -p {box.port} {box.user}@127.0.0.1"
    # Run on "the laptop" (this machine, where the port itself is taken: another local port).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    argv = made["tunnel"].split()
    argv[3] = argv[3].replace(f"{port}:", f"{local}:", 1)
    laptop = subprocess.Popen([argv[0], "-F", "/dev/null", "-i", str(box.client_key), "-o", "BatchMode=yes",
                               "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'known'}",
                               "-o", "ExitOnForwardFailure=yes", *argv[1:]], stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _listening(local) or laptop.poll() is not None, timeout=30, message="the tunnel")
        assert laptop.poll() is None, laptop.stderr and laptop.stderr.read()
        assert http_status(f"http://127.0.0.1:{local}/api/status", token) == 200
    finally:
        laptop.terminate()
        laptop.wait(10)
    # On the workstation itself `forward` has nothing to tunnel: the URL, and the laptop's line.
    rc, out, err = desk.run("forward", "l-lab", subprocess_=True, extra_env=over_ssh)
    assert rc == 0 and out.strip() == made["url"] and made["tunnel"] in err, err
    desk.ok("rm", "l-lab", "--force")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_grant_and_rotate_on_the_remote(desk: Ptdesk, box_engine: Engine) -> None:
    desk.new("ssh", "--on", "box", "--name", "r-col", "--cpus", "1")
    ann = desk.json("collab", "add", "ann", "--on", "box")
    desk.ok("grant", "ann", "r-col", "--on", "box")
    experiment = desk.json("ls", "--on", "box")[0]
    port = experiment["ssh"]["port"]

    def logs_in(key: str) -> bool:  # ann has an account of her own there, named after her
        return _login(port, Path(key), experiment, "ann")

    old = Path(ann["identity_file"]).read_bytes()
    assert logs_in(ann["identity_file"])
    rotated = desk.json("collab", "rotate", "ann", "--on", "box")
    assert rotated["workstation"] == "box"
    assert [(c["name"], c["status"], c["verified"]) for c in rotated["containers"]] == [("r-col", "rotated", True)]
    keep = desk.home / "old-ann"
    keep.write_bytes(old)
    keep.chmod(0o600)
    assert not logs_in(str(keep)) and logs_in(rotated["identity_file"])
    # ann's keys are the remote workstation's own (its state lives under workstations/box).
    assert rotated["identity_file"].startswith(str(desk.home / "workstations" / "box"))
    desk.ok("rm", "r-col", "--on", "box", "--force")


def _login(port: int, key: Path, experiment: dict, account: str) -> bool:
    """Log in with `key` (OpenSSH) as `account`, trusting only the experiment's pinned host key."""
    known = Path(experiment["ssh"]["command"].split("UserKnownHostsFile=")[1].split()[0])
    proc = subprocess.run(["ssh", "-i", str(key), "-p", str(port), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                           f"{account}@127.0.0.1", "true"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return proc.returncode == 0


def test_a_dead_engine_shows_on_its_own_lines_and_recovers(desk: Ptdesk, box: RemoteBox, engine: Engine) -> None:
    desk.new("ssh", "--name", "l-keep", "--cpus", "1")  # a local experiment that must stay listed
    desk.new("ssh", "--on", "box", "--name", "r-dies", "--cpus", "1")
    box.kill_engine()
    try:
        started = time.monotonic()
        rc, out, err = desk.run("ls", "--all", "--json")
        took = time.monotonic() - started
        assert rc == 3 and took < 10, (rc, took)
        rows = {e["name"]: e for e in json.loads(out)}
        assert set(rows) == {"l-keep", "r-dies"} and rows["l-keep"]["status"] == "running"
        # The box's rows stay, as the dashboard keeps them: unreachable, with the reason.
        assert rows["r-dies"]["status"] == "unreachable" and "does not answer" in rows["r-dies"]["reason"]
        assert err.strip().splitlines() == [
            "ptdesk: Workstation box: SSH works but its Docker engine does not answer."]
        lines = desk.run("ls")
        assert "l-keep" in lines[1] and "box" in lines[2]
    finally:
        box.start_engine()
    listed = wait_until(lambda: {e["name"]: e for e in desk.json("ls", "--all")}.get("r-dies"), timeout=30,
                        message="the remote experiment to be listed again")
    assert listed["workstation"] == "box"
    desk.ok("rm", "l-keep", "--force")
    desk.ok("rm", "r-dies", "--on", "box", "--force")


def test_unreachable_and_refused_workstations_are_one_line_each(desk: Ptdesk, box: RemoteBox,
                                                                tmp_path: Path) -> None:
    from ptdesk.core.base import keys

    stranger = keys.write_keypair(tmp_path / "stranger", keys.generate("stranger"))
    config = desk.home / "config.toml"
    saved = config.read_text()
    try:
        config.write_text(saved + f'\n[workstations.gone]\nengine = "ssh://nobody@127.0.0.1:1"\n'
                          f'\n[workstations.nokey]\nengine = "{box.engine_url}"\nidentity_file = "{stranger}"\n')
        known = desk.home / "keys" / "workstations" / "known_hosts"
        started = time.monotonic()
        rc, out, err = desk.run("ls", "--all")
        assert rc == 3 and time.monotonic() - started < 10
        assert sorted(err.strip().splitlines()) == sorted([
            "ptdesk: Workstation gone: 127.0.0.1:1 is unreachable (Connection refused).",
            f"ptdesk: Workstation nokey: {box.user}@127.0.0.1 refused ptdesk's SSH key.",
        ]), err
        assert known.exists()
    finally:
        config.write_text(saved)


def test_a_changed_host_key_refuses_the_workstation(desk: Ptdesk, box: RemoteBox) -> None:
    original = box.host_key.read_bytes()
    box.new_host_key()
    box.restart_sshd()
    try:
        rc, out, err = desk.run("ls", "--on", "box")
        assert rc == 3
        assert err.startswith("ptdesk: Workstation box: its host key changed since it was pinned")
        rc, out, err = desk.run("new", "ssh", "--on", "box", "--name", "never")
        assert rc == 3 and "host key changed" in err
        assert "never" not in {e["name"] for e in desk.json("ls", "--all", "--on", "local")}
        assert not (desk.home / "workstations" / "box" / "experiments" / "never").exists()
        # The machine really was reinstalled: `add` again shows the new fingerprint; a "no" keeps the old pin.
        rc, out, err = desk.run("workstations", "add", "box", box.engine_url, "--identity", box.client_key,
                                extra_env={}, timeout=60)
        assert rc != 0 and "differs from the pinned" in err and "Not pinned" in err
        assert desk.run("ls", "--on", "box")[0] == 3
        desk.ok("workstations", "add", "box", box.engine_url, "--identity", box.client_key, "--yes")
        assert desk.run("ls", "--on", "box")[0] == 0
    finally:
        box.host_key.write_bytes(original)
        box.restart_sshd()
    desk.ok("workstations", "add", "box", box.engine_url, "--identity", box.client_key, "--yes")
    assert desk.run("ls", "--on", "box")[0] == 0


def test_gpu_truth_of_the_remote_comes_from_its_sampler_over_the_same_connection(
        desk: Ptdesk, box: RemoteBox, box_engine: Engine, engine: Engine) -> None:
    require_image(engine, SAMPLER_IMAGE)
    box.load_images(SAMPLER_IMAGE)
    samplers = {"label": ["ptdesk.sampler=1", f"ptdesk.instance={desk.instance}"]}
    # The CLI: one sample through the sampler, which is gone once the command is.
    shown = desk.json("gpus", "--on", "box")
    assert shown["available"] is False and shown["workstation"] == "box"
    assert shown["reason"].startswith("box: ") and "libnvidia-ml" in shown["reason"]  # the sampler's own words
    wait_until(lambda: box_engine.api.containers(all=True, filters=samplers) == [], timeout=20,
               message="the sampler to go with the command")
    # The core, as the dashboard holds it: the sampler runs, locked down, while someone watches.
    config = load_config(desk.env)
    ws = Workstation(config, config.workstations["box"])
    try:
        assert ws.gpu_snapshot().available is False
        running = box_engine.api.containers(filters=samplers)
        assert len(running) == 1
        host = box_engine.inspect(running[0]["Id"])["HostConfig"]
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["PidMode"] == "host"
        assert host["NetworkMode"] == "none" and host["AutoRemove"] and not host["Privileged"]
        assert not host.get("CapAdd") and not host.get("Binds") and not host.get("PortBindings")
        assert box_engine.inspect(running[0]["Id"])["Config"]["User"] == "65534:65534"
        assert ws.gpu_snapshot().available is False  # the same sampler, still streaming
        assert len(box_engine.api.containers(filters=samplers)) == 1
    finally:
        ws.close()
    wait_until(lambda: box_engine.api.containers(all=True, filters=samplers) == [], timeout=20,
               message="the sampler to exit when nobody watches")


def test_on_auto_without_gpus_says_where_and_why(desk: Ptdesk, engine: Engine, box_engine: Engine) -> None:
    rc, out, err = desk.run("new", "ssh", "--on", "auto", "--gpus", "0", "--name", "nowhere")
    assert rc == 2 and err.startswith("ptdesk: No workstation can give GPU 0 now (local: "), err
    assert ".;" not in err and ".)." not in err  # one sentence, its parts without their own full stops
    assert "box: " in err and "nowhere" not in {c["Labels"]["ptdesk.name"] for c in on_box(desk, box_engine)}
    assert on_local(desk, engine) == []
    rc, out, err = desk.run("new", "ssh", "--on", "auto", "--gpus", "auto", "--name", "cpu-only", "--cpus", "1",
                            "--json")
    assert rc == 0, err
    assert err.startswith("ptdesk: --on auto chose local (no free GPU anywhere, so the default workstation")
    assert ".)." not in err and ".;" not in err, err
    assert json.loads(out)["workstation"] == "local"
    desk.ok("rm", "cpu-only", "--force")
    made = desk.new("ssh", "--on", "auto", "--gpus", "none", "--name", "cpu-2", "--cpus", "1")
    assert made["workstation"] == "local"  # no GPU asked for: the default workstation
    desk.ok("rm", "cpu-2", "--force")


def test_many_distinct_requests_stay_within_sshds_sessions(desk: Ptdesk) -> None:
    """docker-py would open a pool (and an SSH session) per URL; sshd allows 10 sessions per
    connection by default. ptdesk's adapter shares one small pool, with a stream open as well."""
    config = load_config(desk.env)
    ws = Workstation(config, config.workstations["box"])
    try:
        events = ws.engine.events(config.instance)  # a stream holds a session the whole time
        try:
            for i in range(25):
                assert ws.engine.try_inspect(f"ptdesk-none-{i}") is None
                assert ws.engine.image_info(f"ptdesk/none-{i}:x") is None
        finally:
            events.close()
    finally:
        ws.close()


def test_the_remote_engines_ssh_connection_has_nagle_off_and_comes_back_so(desk: Ptdesk) -> None:
    """Every request to a remote engine is a few small SSH messages over one connection: with Nagle's
    algorithm on, each would wait on the box's delayed ACKs. The connection ptdesk's adapter makes
    has it off, and so has the one it makes again after losing it."""
    import socket

    config = load_config(desk.env)
    ws = Workstation(config, config.workstations["box"])
    try:
        adapter = ws.engine.api.get_adapter("http+docker://ssh")

        def transport_socket() -> socket.socket:
            return adapter.ssh_client.get_transport().sock

        assert transport_socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert ws.engine.try_inspect("ptdesk-none") is None  # it really answers over it
        adapter.ssh_client.close()  # the connection is lost: the next request connects again
        adapter.pools.clear()
        assert ws.engine.try_inspect("ptdesk-none") is None
        assert transport_socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        ws.close()


def test_watching_a_remote_cleans_up_after_docker_rm_and_stops_when_asked(
        desk: Ptdesk, box_engine: Engine) -> None:
    """The watcher (what `ptdesk watch --on box` and the dashboard run) over SSH: events arrive,
    what a removed container held is released, and stopping ends the stream at once."""
    made = desk.new("ssh", "--on", "box", "--name", "r-watch", "--cpus", "1")
    config = load_config(desk.env)
    ws = Workstation(config, config.workstations["box"])
    seen: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=ws.watch_events, args=(lambda e: seen.append(e.action),
                                                           lambda up, why: None, stop), daemon=True)
    try:
        thread.start()
        wait_until(lambda: ws.engine_connected, timeout=20, message="the watcher to connect")
        box_engine.remove(made["id"], force=True)  # behind ptdesk's back, on the remote
        wait_until(lambda: "destroy" in seen, timeout=30, message="the destroy event over SSH")
        # Released by the watcher itself (no command ran that would reconcile first).
        wait_until(lambda: "r-watch" not in box_records(desk), timeout=30, message="the record to be released")
        assert not (desk.home / "workstations" / "box" / "experiments" / "r-watch").exists()
    finally:
        stop.set()
        thread.join(10)
        ws.close()
    assert not thread.is_alive()


def _rows(app) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """name -> (workstation, status cell) as the dashboard's table shows them."""
    table = app.main.table
    return {table.experiments[row.value].name: (table.where[row.value], str(table.get_cell(row, "status")))
            for row in table.rows}


async def test_one_dashboard_shows_both_and_a_dead_box_marks_only_its_own_rows(
        desk: Ptdesk, box: RemoteBox, box_engine: Engine, engine: Engine) -> None:
    """Both workstations in one table (a Where column) and one GPU panel grouped by workstation;
    the remote engine killed: only its rows and its GPU group say so, the local rows stay live
    (a stop done meanwhile shows), and the remote's rows come back when its engine does."""
    from ptdesk.core.fleet import Fleet
    from ptdesk.tui.app import PtdeskApp
    from ptdesk.tui.widgets.gpu_panel import GpuGroup

    require_image(engine, SAMPLER_IMAGE)
    box.load_images(SAMPLER_IMAGE)
    desk.new("ssh", "--name", "d-local", "--cpus", "1")
    desk.new("ssh", "--on", "box", "--name", "d-remote", "--cpus", "1")
    fleet = Fleet(load_config(desk.env))
    app = PtdeskApp([fleet.workstation("local"), fleet.workstation("box")], choose=fleet.choose)
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot, lambda: _rows(app) == {"d-local": ("local", "running"),
                                                        "d-remote": ("box", "running")},
                         message="both workstations' rows")
            assert "Where" in [str(c.label) for c in app.main.table.columns.values()]
            # The box's figures come from its engine (its cgroup files are there): memory, then CPU %.
            remote = next(k for k, e in app.main.table.experiments.items() if e.name == "d-remote")
            await settle(pilot, lambda: str(app.main.table.get_cell(remote, "memory")).endswith("iB")
                         and str(app.main.table.get_cell(remote, "cpu")).endswith("%"),
                         message="the remote row's CPU and memory")
            groups = {g.workstation: g for g in app.query(GpuGroup)}
            assert list(groups) == ["local", "box"] and all(g.query_one(".gpu-title").display for g in groups.values())
            await settle(pilot, lambda: "libnvidia-ml" in str(groups["box"].query_one(".gpu-reason").render()),
                         message="the box's GPU group from its own sampler")

            box.kill_engine()
            try:
                await settle(pilot, lambda: _rows(app).get("d-remote", ("", ""))[1] == "unreachable", timeout=60,
                             message="the remote's rows marked")
                assert _rows(app)["d-local"] == ("local", "running")
                assert not app.query_one("#banner").display  # the trouble is the box's, not everyone's
                assert "engine unreachable" in str(groups["box"].query_one(".gpu-title").render())
                assert "unreachable" not in str(groups["local"].query_one(".gpu-title").render())
                desk.ok("stop", "d-local")  # the local side keeps working, and the table follows it
                await settle(pilot, lambda: _rows(app)["d-local"][1] != "running", timeout=60,
                             message="the local stop shown while the box is dead")
                assert "box unreachable" in str(app.query_one("#topbar").render())
            finally:
                box.start_engine()
            await settle(pilot, lambda: _rows(app).get("d-remote", ("", "unreachable"))[1] != "unreachable",
                         timeout=90, message="the remote's rows back")
            assert "engine unreachable" not in str(groups["box"].query_one(".gpu-title").render())
    finally:
        fleet.close()
        desk.ok("rm", "d-local", "--force")
        desk.ok("rm", "d-remote", "--on", "box", "--force")


async def test_the_form_launches_on_the_workstation_chosen_and_selects_its_row(
        desk: Ptdesk, box_engine: Engine, engine: Engine) -> None:
    """With several workstations the form asks where ("auto" first); launched on the box, the
    container is there (not here) and the new row, on the box, is selected."""
    from textual.widgets import Input, Select

    from ptdesk.core.fleet import Fleet
    from ptdesk.tui.app import PtdeskApp
    from ptdesk.tui.screens.new_experiment import NewExperiment

    fleet = Fleet(load_config(desk.env))
    app = PtdeskApp([fleet.workstation("local"), fleet.workstation("box")], choose=fleet.choose)
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot, lambda: app.main.boxes["box"].listed, message="the box's first list")
            await pilot.press("n")
            form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
            where = form.query_one("#where", Select)
            assert where.value == "auto" and [str(o[0]) for o in where._options][-2:] == ["local", "box"]
            form.query_one("#kind", Select).value = "ssh"
            form.query_one("#cpus", Input).value = "1"
            where.value = "box"
            form.query_one("#name", Input).value = "f-box"
            form.query_one("#name", Input).focus()
            await pilot.press("enter")
            await settle(pilot, lambda: form.result is not None or (not form.busy and form._steps), timeout=120,
                         message="the launch")
            assert form.result is not None, str(form.query_one("#steps").render())
            assert [c["Labels"]["ptdesk.name"] for c in on_box(desk, box_engine)] == ["f-box"]
            assert on_local(desk, engine) == []
            await pilot.press("escape")
            await settle(pilot, lambda: app.main.table.selected is not None
                         and (app.main.table.selected.name, app.main.table.selected_where) == ("f-box", "box"),
                         message="the new row selected, on the box")
    finally:
        fleet.close()
        desk.ok("rm", "f-box", "--on", "box", "--force")



def test_doctor_on_a_workstation_checks_that_box(desk: Ptdesk) -> None:
    """Its engine over SSH, its images, its GPUs through its sampler, its own store and keys; not
    this machine's bind address (that is the box's, tried by every launch there)."""
    rc, out, err = desk.run("doctor", "--on", "box")
    assert rc == 0, (out, err)
    checks = {line[7:].split()[0]: line for line in out.splitlines() if line.startswith("[")}
    assert "Docker" in checks["engine"] and "bind-address" not in checks
    assert "workstations/box/state.db" in checks["state"] and "workstations/box/keys" in checks["keys"]
    assert checks["nvml"].count("box") == 1  # named once, not "box: Workstation box: ..."
    rc, out, err = desk.run("doctor", "--on", "nope")
    assert rc == 2 and err.strip().splitlines()[0] == "ptdesk: There is no workstation 'nope'.", err


def test_hints_about_a_remote_box_say_on_which(desk: Ptdesk, box_engine: Engine, tmp_path: Path) -> None:
    """What to run next names the box: doctor's build hint, the ssh config's header, a missing
    GPU sampler (not a driver problem); and among several, the local engine's line says `local`."""
    missing = {"PTDESK_JUPYTER_IMAGE": "ptdesk-test/not-built:latest"}
    rc, out, _ = desk.run("doctor", "--on", "box", "--json", extra_env=missing)
    report = {c["name"]: c for c in json.loads(out)["checks"]}
    assert rc == 1
    assert report["image-jupyter"]["hint"] == "Build it with: ptdesk images build jupyter --on box"
    header = Path(desk.json("ssh-config", "--on", "box")["path"]).read_text().splitlines()[1]
    assert "`ptdesk ssh-config --install --on box`" in header
    if not box_engine.image_exists(SAMPLER_IMAGE):
        gpus = desk.json("gpus", "--on", "box")
        reason = gpus["reason"] if isinstance(gpus, dict) else gpus[0]["reason"]
        assert "ptdesk images build sampler --on box" in reason and "No such image" not in reason, reason
    rc, out, err = desk.run("ls", extra_env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert rc == 3 and "ptdesk: Workstation local: " in err, err


def test_reservation_times_on_the_box_are_its_own_and_shown_with_its_zone(desk: Ptdesk) -> None:
    """The box runs in India; this machine does not: times typed for it are read on its clock, and
    every time shown for it says so (its engine's SystemTime gives the offset)."""
    from datetime import datetime, timedelta, timezone

    india = timezone(timedelta(hours=5, minutes=30))
    if datetime.now().astimezone().utcoffset() == india.utcoffset(None):
        pytest.skip("this machine is in the box's zone: nothing tells the two apart")
    assert desk.json("reservations", "--on", "box")["zone"] == "UTC+05:30"
    assert desk.json("reservations", "--on", "local")["zone"] == datetime.now().astimezone().strftime("%Z")
    # Parsed and shown on the box's clock: 09:00 typed is 09:00 shown, in its zone (read on this
    # machine's clock, one of the two would be 5 h 30 off).
    line = desk.fails("reserve", "0", "--on", "box", "--from", "tomorrow 9:00", "--to", "tomorrow 8:00")[0]
    assert "08:00 UTC+05:30) is not after the start (" in line and "09:00 UTC+05:30)" in line, line
    assert "The end (" in desk.fails("reserve", "0", "--on", "local", "--from", "tomorrow 9:00",
                                     "--to", "tomorrow 8:00")[0]
    # A start the box's clock has passed is in the past there (its 00:00 today is hours ago).
    past = desk.fails("reserve", "0", "--on", "box", "--from", "00:00", "--to", "1h")[0]
    assert "00:00 UTC+05:30) is in the past" in past, past


@pytest.fixture
def two_boxes(gpu_desk: GpuDesk, box: RemoteBox, box_engine: Engine, engine: Engine) -> Iterator[GpuDesk]:
    """Another home of its own: local is the GPU engine with one idle GPU (an NVML scenario); box is
    the remote, its default workstation. The box has no GPU to show: its GPU truth comes from the
    sampler there, which finds no NVML (NVML is replaced only in this process)."""
    from tests.support.nvml_scenarios import idle

    require_image(engine, SAMPLER_IMAGE)
    box.load_images(SAMPLER_IMAGE)
    gpu_desk.install(idle(1))
    out = gpu_desk.ok("workstations", "add", "box", box.engine_url, "--identity", box.client_key, "--yes",
                      "--default")
    assert "connected: Docker" in out, out
    yield gpu_desk
    remove_instance_containers(box_engine, gpu_desk.instance)


def test_a_sweep_on_auto_places_each_job_where_the_gpus_are_after_the_jobs_before_it(
        two_boxes: GpuDesk, tmp_path: Path) -> None:
    """The spread a GPU-less default box makes fair: the first job takes local's only GPU, the second
    job's choice sees it taken (no free GPU anywhere) and goes to the default workstation without one;
    chosen once per sweep, both would have landed on local. With --queue, each queues where the
    queue is shortest. Names stay free on every workstation."""
    desk = two_boxes
    code = tmp_path / "code"
    code.mkdir()
    rc, out, err = desk.run("run", "--json", "--on", "auto", "--gpus", "auto", "--cpus", "1", "--name", "sp",
                            "--code", code, "--sweep", "x=1,2", "--", "sleep", "6{x}")
    assert rc == 0, err
    jobs = json.loads(out)
    assert [(j["name"], j["workstation"]) for j in jobs] == [("sp-1", "local"), ("sp-2", "box")]
    assert jobs[0]["gpus"] == [0] and jobs[1]["gpus"] == []
    assert jobs[0]["snapshot"] == jobs[1]["snapshot"]  # the code frozen once, for every box
    # Said per job, where and why (as --on auto does for one launch); the old once-per-sweep warning is gone.
    assert "ptdesk: sp-1 on local (GPU 0: " in err, err
    assert "ptdesk: sp-2 on box (no free GPU anywhere, so the default workstation, without a GPU: local: " in err
    assert "once per sweep" not in err and "--on auto chose" not in err
    # Listed together, each with its workstation; names stay unique across the boxes.
    listed = {j["name"]: j for j in desk.json("jobs")}
    assert {n: (j["workstation"], j["sweep"]) for n, j in listed.items()} == {
        "sp-1": ("local", "sp"), "sp-2": ("box", "sp")}
    # Nothing free anywhere, --queue: each queues where the queue is shortest among boxes with a GPU.
    rc, out, err = desk.run("run", "--json", "--on", "auto", "--gpus", "any:1", "--queue", "--cpus", "1",
                            "--name", "q", "--code", code, "--sweep", "x=1,2", "--", "echo", "{x}")
    assert rc == 0, err
    assert [(j["name"], j["workstation"], j["status"].split(" #")[0]) for j in json.loads(out)] == [
        ("q-1", "local", "queued"), ("q-2", "local", "queued")]
    assert "ptdesk: q-2 on local (no GPU free anywhere; queued where the queue is shortest: 1 waiting there)" in err
    for name in ("q-1", "q-2", "sp-1"):
        desk.ok("cancel", name, "--on", "local")
    # A later job that can be placed nowhere (no --queue): said, and the jobs before it are kept, named.
    rc, _, err = desk.run("run", "--on", "auto", "--gpus", "any:1", "--cpus", "1", "--name", "m", "--code", code,
                          "--sweep", "x=1,2", "--", "sleep", "6{x}")
    assert rc == 2 and "ptdesk: No workstation can give any GPU now (local: " in err, err
    assert "(the sweep's jobs before it are kept: m-1 on local)." in err and "Traceback" not in err, err
    assert [j["name"] for j in desk.json("jobs", "--on", "local") if j["status"] == "running"] == ["m-1"]
    desk.ok("cancel", "m-1", "--on", "local")
    # Names are free on every workstation: with local's sp-1 forgotten, box's sp-2 still takes its name.
    desk.ok("jobs", "--prune", "--on", "local")
    rc, _, err = desk.run("run", "--on", "auto", "--gpus", "auto", "--name", "sp", "--code", code,
                          "--sweep", "x=1,2", "--", "echo", "{x}")
    assert rc != 0 and "A job or experiment named 'sp-2' exists already." in err, err
    assert set(_listed_names(desk)) == {"sp-2"}  # nothing made
    desk.ok("cancel", "sp-2", "--on", "box")


def _listed_names(desk: GpuDesk) -> list[str]:
    return [j["name"] for j in desk.json("jobs")]
