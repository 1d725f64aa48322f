"""The team's first week, minor items: each a test of what a person meets on the real engine."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.engine.client import Engine
from tests.support.helpers import SSH_IMAGE, remove_instance_containers, wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk


def test_limits_beyond_the_box_are_refused_and_lowered_defaults_are_said(cli: Ptdesk, engine: Engine) -> None:
    total = int(engine.info()["MemTotal"])
    lines = cli.fails("new", "ssh", "--name", "huge", "--memory", "5000g")
    assert "This workstation has only" in lines[0] and "5000g is more than that" in lines[0], lines
    cli.assert_nothing_left(engine, "huge")
    # Defaults larger than the box are lowered to it, and the launch says so (not silently).
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text("[limits]\ncpus = 1000\nmemory = \"100000g\"\n")
    rc, out, err = cli.run("new", "ssh", "--name", "capped", "--json", subprocess_=True)
    assert rc == 0, err
    ncpu = int(engine.info()["NCPU"])
    assert f"CPU limit {ncpu} (the default 1000 is more than this workstation has)" in err, err
    assert f"Memory limit {total // 1024**2}m (the default 100000g" in err, err
    limits = engine.inspect(json.loads(out)["id"])["HostConfig"]
    assert limits["NanoCpus"] == ncpu * 10**9 and limits["Memory"] == (total // 1024**2) * 1024**2


def test_new_help_shows_the_limit_defaults(cli: Ptdesk) -> None:
    out = cli.ok("new", "ssh", "--help")
    assert "[limits] memory, 16g" in out and "[limits] cpus, 4" in out


def test_an_expired_collaborator_is_listed_as_expired_with_iso_times(cli: Ptdesk) -> None:
    cli.ok("collab", "add", "eve", "--expires", "1s")
    cli.ok("collab", "add", "fay", "--expires", "2099-01-01")
    wait_until(lambda: "EXPIRED" in cli.ok("collab", "ls"), timeout=30, message="eve's key to expire")
    people = {p["name"]: p for p in cli.json("collab", "ls")}
    assert people["eve"]["expired"] is True and people["fay"]["expired"] is False
    assert people["fay"]["expires"] == "2099-01-01T00:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", people["eve"]["created"])
    rows = {line.split()[0]: line for line in cli.ok("collab", "ls").splitlines()[1:]}
    assert "EXPIRED" in rows["eve"] and "EXPIRED" not in rows["fay"]


def test_ls_with_the_engine_down_keeps_the_rows_as_unreachable_and_claims_nothing(cli: Ptdesk, tmp_path) -> None:
    down = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    rc, out, err = cli.run("ls", "--on", "local", extra_env=down)
    assert rc == 3 and "not reachable" in err and "No running experiments" not in out + err, (out, err)
    cli.new("ssh", "--name", "seen", "--cpus", "1")
    rc, out, err = cli.run("ls", "--json", extra_env=down)
    assert rc == 3
    [row] = json.loads(out)
    assert (row["name"], row["status"], row["workstation"]) == ("seen", "unreachable", "local")
    assert "not reachable" in row["reason"]
    rc, out, err = cli.run("ls", extra_env=down)
    assert rc == 3 and "seen" in out and "unreachable" in out
    assert "(stopped)" not in out, out  # was `- (stopped)`: not known to be stopped (it may well still run)


def test_a_stopped_experiment_reads_stopped_offers_no_connect_line_and_ssh_exits_1(cli: Ptdesk) -> None:
    cli.new("ssh", "--name", "napping", "--cpus", "1")
    cli.ok("stop", "napping")
    [row] = [line for line in cli.ok("ls", "--all").splitlines() if line.startswith("napping")]
    assert " stopped " in row and "exited" not in row and row.rstrip().endswith("- (stopped)"), row
    rc, out, err = cli.run("ssh", "napping", "true", subprocess_=True)
    assert rc == 1 and "'napping' is stopped, so nothing answers there." in err, (rc, err)


def test_ssh_on_ones_own_jupyter_experiment_says_what_it_is(cli: Ptdesk) -> None:
    lab = cli.new("jupyter", "--name", "mylab", "--cpus", "1")
    rc, _, err = cli.run("ssh", "mylab", "true", subprocess_=True)
    assert rc == 1 and "'mylab' is a jupyter experiment: it has no SSH login." in err, err
    assert "of yours" not in err and "ptdesk forward mylab" in err
    # forward knows it: on this machine the URL is served as it is.
    rc, out, err = cli.run("forward", "mylab", subprocess_=True)
    assert rc == 0 and out.strip() == lab["jupyter"]["url"], err


def test_pubkey_given_a_private_key_says_so(cli: Ptdesk, engine: Engine, keygen) -> None:  # noqa: ANN001
    private = keygen("gil")
    for args in (("collab", "add", "gil", "--pubkey", private), ("new", "ssh", "--name", "priv", "--pubkey", private)):
        lines = cli.fails(*args)
        assert f"{private} is a private key; ptdesk needs the public one." in lines[0], lines
        assert f"{private}.pub" in lines[1]
        assert "PRIVATE" not in "".join(lines) and private.read_text().split()[3] not in "".join(lines)
    cli.assert_nothing_left(engine, "priv")


def test_an_ssh_login_starts_in_the_workspace(cli: Ptdesk) -> None:
    cli.new("ssh", "--name", "desk", "--cpus", "1")
    login = subprocess.run([str(Path(sys.executable).parent / "ptdesk"), "ssh", "desk"], env=cli.env,
                           input="pwd\nexit\n", capture_output=True, text=True, timeout=60)
    assert login.returncode == 0 and login.stdout.strip().splitlines()[-1] == "/workspace", login


def _tag_with_label(engine: Engine, base: str, tag: str, value: str) -> str:
    """An image FROM `base` with one more label: a new image id, the same environment (its labels)."""
    dockerfile = f"FROM {base}\nLABEL ptdesk.test.rebuild={value}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    engine.build(buffer.getvalue(), tag, {}, lambda _line: None)
    return engine.image_info(tag)["Id"]


def test_a_rebuild_with_the_same_environment_is_not_behind(cli: Ptdesk, engine: Engine) -> None:
    tag = f"ptdesk-test/wd-same:{uuid.uuid4().hex[:8]}"
    try:
        first = _tag_with_label(engine, SSH_IMAGE, tag, "one")
        env = {"PTDESK_SSH_IMAGE": tag}
        cli.new("ssh", "--name", "same-env", "--cpus", "1", extra_env=env)
        second = _tag_with_label(engine, SSH_IMAGE, tag, "two")
        assert second != first
        listed = {e["name"]: e for e in cli.json("ls", extra_env=env)}
        assert listed["same-env"]["environment"]["behind"] is False
        assert cli.json("env", "same-env", extra_env=env)["behind"] is False
    finally:
        remove_instance_containers(engine, cli.instance)
        if engine.image_exists(tag):
            engine.api.remove_image(tag, force=True)


def test_plain_ls_says_which_stopped_experiments_it_leaves_out(cli: Ptdesk, engine: Engine) -> None:
    """As after an engine restart: the container is stopped behind ptdesk's back."""
    made = cli.new("ssh", "--name", "came-back-stopped", "--cpus", "1")
    engine.stop(made["id"])
    rc, out, err = cli.run("ls")
    assert rc == 0 and "came-back-stopped" not in out
    assert "1 stopped experiment(s) not shown: came-back-stopped" in err, err
    assert "ptdesk start came-back-stopped" in err
    assert cli.json("ls") == []  # JSON as before: running ones only without --all


def test_polish_of_everyday_lines(cli: Ptdesk, tmp_path) -> None:
    rc, out, err = cli.run("new", "ssh", "--name", "polish", "--cpus", "1", subprocess_=True)
    assert rc == 0 and "logged in:" not in out, out  # nobody can be, at launch
    assert cli.ok("stop", "polish").strip() == "polish stopped."
    assert cli.ok("stop", "polish").strip() == "polish was already stopped; nothing changed."
    rc, _, err = cli.run("ls", extra_env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert rc == 3 and "scripts/docker-engine" not in err and "systemctl start docker" in err, err


def test_workspace_mistakes_are_one_sentence(cli: Ptdesk, engine: Engine, tmp_path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    assert cli.fails("new", "ssh", "--name", "wsf", "--workspace", a_file)[0] == \
        f"ptdesk: {a_file} cannot be a workspace: it is not a folder."
    assert cli.fails("new", "ssh", "--name", "wsf", "--workspace", "/")[0] == \
        "ptdesk: / cannot be a workspace: it is the whole filesystem."
    cli.assert_nothing_left(engine, "wsf")


def test_gpus_watch_without_a_driver_says_it_once(cli: Ptdesk) -> None:
    """Three seconds of --watch (three refreshes) on this machine, which has no NVIDIA driver."""
    watch = subprocess.run(["timeout", "-s", "INT", "3.5", str(Path(sys.executable).parent / "ptdesk"), "gpus",
                            "--watch"], env=cli.env, capture_output=True, text=True, timeout=60)
    assert watch.stdout.count("No GPU information") == 1, watch.stdout


def test_ssh_config_install_names_stopped_ones_apart_and_uninstall_restores_the_file(cli: Ptdesk,
                                                                                     tmp_path) -> None:
    home = {"HOME": str(tmp_path)}
    user_config = tmp_path / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    user_config.write_text("Host work\n    User me\n")
    user_config.chmod(0o640)
    cli.new("ssh", "--name", "up", "--cpus", "1")
    cli.new("ssh", "--name", "down", "--cpus", "1")
    cli.ok("stop", "down")
    out = cli.ok("ssh-config", "--install", extra_env=home)
    assert "works for up (and VS Code Remote-SSH lists them); for down once started." in out, out
    assert user_config.read_text().startswith("Include ")
    assert "Removed `Include " in cli.ok("ssh-config", "--uninstall", extra_env=home)
    assert user_config.read_text() == "Host work\n    User me\n" and (user_config.stat().st_mode & 0o777) == 0o640
    assert "nothing to remove" in cli.ok("ssh-config", "--uninstall", extra_env=home)
