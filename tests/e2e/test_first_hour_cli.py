"""What a person hits in the first hour with the CLI, each as it was reported: exit codes that match
the README, errors that say what to do, an audit log that records what changed, one GPU default."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tests.support.helpers import REPO

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py


def test_malformed_input_exits_2_and_a_missing_setting_exits_1(cli: Ptdesk) -> None:
    """README: 2 when what you typed is malformed, 1 for everything else."""
    assert cli.run("grant", "Bad!", "box")[0] == 2  # was 1: looked up before it was checked
    assert cli.run("revoke", "eve", "Bad Box!")[0] == 2
    assert cli.run("cull", "--dry-run")[0] == 1  # was 2: nothing typed was malformed
    rc, _, err = cli.run("new", "ssh", "--memory", "lots")
    assert rc == 2 and "hint:" in err and "16g" in err  # the size error now says what a size is


def test_the_memory_limit_is_named_when_it_kills_a_launch(cli: Ptdesk) -> None:
    """Was: "exited with code 137 without any output"."""
    lines = cli.fails("new", "jupyter", "--name", "tiny", "--memory", "8m", "--json")  # --json: no progress lines
    assert "memory limit (8m) killed it" in " ".join(lines) and "512m" in " ".join(lines)
    assert cli.listed() == {} and cli.records() == set()


def test_the_dashboard_without_a_terminal_says_so_and_exits(cli: Ptdesk) -> None:
    """Was: escape codes written into the file, and a hang waiting for keys."""
    proc = subprocess.run([sys.executable, "-m", "ptdesk.cli"], env=cli.env, cwd=REPO, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "needs a terminal" in proc.stderr and "ptdesk ls" in proc.stderr and "\x1b" not in proc.stderr


def test_an_unreachable_engine_is_named(cli: Ptdesk) -> None:
    rc, _, err = cli.run("ls", extra_env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert rc == 3 and "unix:///nonexistent/docker.sock" in err


def test_collab_with_the_engine_down_exits_3_keeps_the_access_and_says_what_is_pending(cli: Ptdesk) -> None:
    """README: 3 when the engine is unreachable (was 1: the revoke's error lost its kind)."""
    cli.new("ssh", "--name", "shared", "--cpus", "1", "--gpus", "none")
    cli.ok("collab", "add", "ola")
    cli.ok("grant", "ola", "shared")
    rc, _, err = cli.run("collab", "rm", "ola", extra_env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert rc == 3 and "'ola' still has access to 'shared'" in err and "not reachable" in err, err
    assert [c["grants"] for c in cli.json("collab", "ls")] == [["shared"]]
    # A rotation the engine cut short is pending there: `collab ls` marks it and says what the mark means.
    rc, _, err = cli.run("collab", "rotate", "ola", extra_env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert rc == 3 and "The rotation of ola is begun and not finished" in err and "ptdesk collab rotate ola" in err, err
    listed = cli.ok("collab", "ls")
    assert "shared*" in listed and "* a key rotation is pending there; ptdesk collab rotate ola finishes it" in listed


def test_the_audit_log_records_changes_with_iso_times_and_whose_access(cli: Ptdesk) -> None:
    cli.new("ssh", "--name", "audited", "--cpus", "1", "--gpus", "none")
    cli.ok("collab", "add", "ola", "--expires", "2099-01-01")
    cli.ok("grant", "ola", "audited")
    cli.ok("stop", "audited")
    cli.ok("stop", "audited")  # a second stop changes nothing: not recorded
    cli.ok("start", "audited")
    cli.ok("start", "audited")  # already running: not recorded
    entries = cli.json("audit")
    actions = [e["action"] for e in entries]
    assert actions.count("stop") == 1 and actions.count("start") == 1
    added = next(e for e in entries if e["action"] == "collab-add")
    assert added["detail"]["expires"] == "2099-01-01T00:00:00Z"  # was an epoch float
    row = next(ln for ln in cli.ok("audit").splitlines() if " grant " in ln)
    assert "audited (ola)" in row  # was: the experiment only


def test_one_gpu_default_for_the_cli_and_the_form(cli: Ptdesk) -> None:
    """Was: none in the CLI, auto in the form. Now the `gpus` setting (auto) for both; on this
    machine (no NVIDIA driver) auto gives none and the launch says why."""
    rc, _, err = cli.run("new", "ssh", "--name", "dflt", "--cpus", "1")
    assert rc == 0 and "No GPU was given" in err
    (cli.home / "config.toml").write_text('gpus = "none"\n')
    rc, _, err = cli.run("new", "ssh", "--name", "dflt2", "--cpus", "1")
    assert rc == 0 and "No GPU was given" not in err
    (cli.home / "config.toml").write_text('gpus = "most"\n')
    assert "gpus 'most'" in cli.fails("ls")[0]


def test_doctor_warns_when_ports_are_published_on_every_address(cli: Ptdesk) -> None:
    report = cli.json("doctor", extra_env={"PTDESK_BIND_ADDRESS": "0.0.0.0"})
    bind = next(c for c in report["checks"] if c["name"] == "bind-address")
    assert bind["status"] == "warn" and "every address" in bind["detail"]  # was [ok]


def test_a_shell_prompt_names_the_experiment(cli: Ptdesk) -> None:
    """Was: the container id as the host name in every prompt."""
    cli.new("ssh", "--name", "named-box", "--cpus", "1", "--gpus", "none")
    rc, out, err = cli.run("ssh", "named-box", "--", "hostname", subprocess_=True)
    assert rc == 0 and out.strip() == "named-box", err
