"""Batch jobs on the real engine: `ptdesk run` detached and with --wait, exit codes kept, time limits
and cancels ending jobs with SIGINT, SIGTERM, SIGKILL in that order, code frozen at submit, logs
and records that outlive the container (also when no ptdesk was open while the job ran), and bad
input that makes nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ptdesk.core.engine.client import Engine
from ptdesk.core.host.processes import pid_alive
from tests.e2e.conftest import Ptdesk, instance_containers
from tests.support.helpers import wait_until

pytestmark = pytest.mark.engine

# Records each signal it receives (and goes on: only SIGKILL ends it), with a child that ignores
# SIGINT and SIGTERM — what a dataloader worker stuck in a system call looks like.
STUBBORN = """\
trap 'echo INT >> "$PTDESK_OUTPUT/signals"' INT
trap 'echo TERM >> "$PTDESK_OUTPUT/signals"' TERM
sh -c 'trap "" INT TERM; while true; do sleep 1; done' &
echo $! > "$PTDESK_OUTPUT/child"
echo started
while true; do sleep 0.1; done
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "stubborn.sh").write_text(STUBBORN)
    (folder / "msg").write_text("v1\n")
    return folder


def job_containers(engine: Engine, instance: str) -> list[dict]:
    """The instance's job containers (not the notices' markers, which say each end once per box)."""
    return [c for c in instance_containers(engine, instance) if c["Labels"].get("ptdesk.kind") == "job"]


def job(cli: Ptdesk, name: str) -> dict:
    return {j["name"]: j for j in cli.json("jobs")}[name]


def signals(cli: Ptdesk, name: str) -> list[str]:
    """The signals the script recorded, a repeat of the same one counted once (the time limit's
    `timeout` signals the command and its process group: one signal may arrive twice)."""
    out = Path(job(cli, name)["output"]) / "signals"
    seen: list[str] = []
    for line in out.read_text().split():
        if not seen or seen[-1] != line:
            seen.append(line)
    return seen


def test_a_job_succeeds_its_output_kept_and_a_failure_keeps_its_exit_code(cli: Ptdesk, engine: Engine,
                                                                             code: Path) -> None:
    rc, out, err = cli.run("run", "--name", "ok", "--gpus", "none", "--code", code, "--wait", "--",
                           "sh", "-c", 'cat msg; echo done > "$PTDESK_OUTPUT/result"; touch /code/x || echo ro')
    assert rc == 0, err
    assert "v1" in out and "ro" in out  # ran in the snapshot, which the job cannot change
    # Only the steps a job takes are said: it has no keys or secrets.
    assert "Placing the code snapshot" in err and "secrets" not in err
    assert "ok succeeded (exit 0 after" in err
    ok = job(cli, "ok")
    assert (ok["status"], ok["exit_code"], ok["workstation"]) == ("succeeded", 0, "local")
    assert Path(ok["output"], "result").read_text() == "done\n"
    assert job_containers(engine, cli.instance) == [] and "ok" not in cli.records()
    rc, out, err = cli.run("run", "--name", "bad", "--gpus", "none", "--code", code, "--wait", "--",
                           "sh", "-c", "echo about to fail; exit 3")
    assert rc == 3 and "bad failed (exit 3 after" in err
    assert (job(cli, "bad")["status"], job(cli, "bad")["exit_code"]) == ("failed", 3)
    # The record and the log live in the person's home, private.
    folder = cli.home / "jobs" / "bad"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert cli.ok("logs", "bad").strip() == "about to fail"
    # Its end is announced (to the person's routes; the journal the dashboard shows): how it ended.
    said = [json.loads(line) for line in (cli.home / "notify" / "journal.jsonl").read_text().splitlines()]
    assert [n["title"] for n in said] == ["ptdesk: job 'ok' succeeded (exit code 0)",
                                          "ptdesk: job 'bad' failed (exit code 3)"]
    assert "about to fail" in said[1]["body"] and "GPU-hours" in said[1]["body"]
    # Each end left a marker (said once per box) that lasts a day, not a month; forgetting the jobs
    # removes theirs, and a new job of a forgotten name is said again.
    markers = [c for c in instance_containers(engine, cli.instance) if "ptdesk.said" in c["Labels"]]
    assert len(markers) == 2
    assert all(int(m["Labels"]["ptdesk.said.until"]) <= time.time() + 86400 for m in markers)
    cli.ok("jobs", "--prune")
    assert [c for c in instance_containers(engine, cli.instance) if "ptdesk.said" in c["Labels"]] == []
    assert cli.run("run", "--name", "ok", "--gpus", "none", "--code", code, "--wait", "--", "true")[0] == 0
    assert (cli.home / "notify" / "journal.jsonl").read_text().count("job 'ok' succeeded") == 2


def test_a_time_limit_ends_the_job_with_sigint_then_sigterm_then_sigkill(cli: Ptdesk, code: Path) -> None:
    rc, _, err = cli.run("run", "--name", "slow", "--gpus", "none", "--code", code, "--time-limit", "2s",
                         "--grace", "1", "--wait", "--", "bash", "stubborn.sh")
    assert rc == 137, err  # SIGKILL: neither the script nor its child stopped for INT or TERM
    assert "slow timed out" in err
    assert signals(cli, "slow") == ["INT", "TERM"]
    assert job(cli, "slow")["status"] == "timed out"


def test_cancel_ends_a_running_job_in_order_and_leaves_no_process(cli: Ptdesk, engine: Engine, code: Path) -> None:
    cli.ok("run", "--name", "long", "--gpus", "none", "--code", code, "--grace", "1", "--", "bash", "stubborn.sh")
    record = cli.config.home / "jobs" / "long"
    output = Path(json.loads((record / "record.json").read_text())["output"])
    wait_until(lambda: (output / "child").exists(), timeout=30, message="the job's child to start")
    container = next(c["Id"] for c in job_containers(engine, cli.instance))
    pids = engine.top_pids(container)
    assert len(pids) >= 3  # init, the script, its stubborn child (and their sleeps)
    running = job(cli, "long")  # listed while it runs: when it started and how long so far, not "-"
    assert running["status"] == "running" and running["started"] is not None
    wait_until(lambda: job(cli, "long")["duration"] > 0, timeout=30, message="its duration so far")
    out = cli.ok("cancel", "long")
    assert "long cancelled (exit 137 after" in out
    assert signals(cli, "long") == ["INT", "TERM"]
    assert [p for p in pids if pid_alive(p)] == []  # the child that ignored SIGTERM is gone too
    assert engine.try_inspect(container) is None
    assert "started" in cli.ok("logs", "long")
    assert "has ended already" in cli.fails("cancel", "long")[0]


def test_code_is_frozen_at_submit_and_the_record_outlives_a_closed_ptdesk(cli: Ptdesk, engine: Engine,
                                                                          code: Path) -> None:
    subprocess.run(["git", "init", "-q", str(code)], check=True)
    (code / ".gitignore").write_text("checkpoints/\n")
    (code / "checkpoints").mkdir()
    (code / "checkpoints" / "big.ckpt").write_bytes(b"x" * 1000)
    (code / ".ptdeskignore").write_text("*.log\n")
    (code / "notes.log").write_text("scratch\n")
    git = ["git", "-C", str(code), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "msg", "stubborn.sh", ".gitignore"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cli.ok("run", "--name", "frozen", "--gpus", "none", "--code", code, "--",
           "sh", "-c", "sleep 2; cat msg; ls -A /code")
    (code / "msg").write_text("v2\n")  # edited while the job waits to read it
    (code / "new.py").write_text("print()\n")
    # Nobody's ptdesk runs while the job ends: the next command finds it ended, keeps it, removes it.
    container = next(c["Id"] for c in job_containers(engine, cli.instance))
    wait_until(lambda: not engine.is_running(container), timeout=60, message="the job to end")
    assert engine.try_inspect(container) is not None
    listed = job(cli, "frozen")
    assert listed["status"] == "succeeded" and engine.try_inspect(container) is None
    assert cli.ok("logs", "frozen").split() == ["v1", ".gitignore", ".ptdeskignore", "msg", "stubborn.sh"]
    assert (listed["snapshot"]["git_commit"], listed["snapshot"]["git_dirty"]) == (commit, True)
    # rerun: the same snapshot and command, as a new job.
    again = cli.json("rerun", "frozen")[0]
    assert again["name"] != "frozen" and again["command"] == listed["command"]
    assert again["snapshot"]["git_commit"] == commit


@pytest.mark.parametrize(("args", "said"), [
    ((), "There is no command to run."),
    (("--time-limit", "soon", "--", "true"), "'soon' is not a duration."),
    (("--sweep", "lr=1,2", "--", "echo", "{lr}", "{bs}"), "The placeholder {bs} in the command has no values."),
    (("--snapshot-limit", "100", "--", "true"), "(235 B counted before stopping); the biggest so far: stubborn.sh"),
    (("--like", "nosuch", "--", "true"), "No experiment named 'nosuch'"),
    (("--snapshot-limit", "lots", "--", "true"), "--snapshot-limit 'lots' is not a size."),  # was a traceback
    (("--data", "/nonexistent-data", "--", "true"), "The --data folder /nonexistent-data does not exist."),
    (("--data", "/etc", "--", "true"), "/etc cannot be mounted with --data: it is the system folder /etc."),
])
def test_bad_input_says_one_sentence_and_makes_nothing(cli: Ptdesk, engine: Engine, code: Path,
                                                       args: tuple[str, ...], said: str) -> None:
    lines = cli.fails("run", "--gpus", "none", "--code", code, *args)
    assert said in lines[0]
    assert job_containers(engine, cli.instance) == []
    assert not any((cli.home / "jobs").glob("[!.]*")) if (cli.home / "jobs").exists() else True
    assert os.listdir(code)  # the folder itself untouched


def test_a_job_like_an_experiment_sees_what_was_installed_in_it_live(cli: Ptdesk, engine: Engine,
                                                                     code: Path) -> None:
    from tests.support.wheels import make_wheel

    notebook = cli.new("jupyter", "--name", "nb")
    wheel = make_wheel(cli.config.workspaces / "nb")  # that folder is the container's /workspace
    config = cli.config
    rc, out = engine.exec(notebook["id"], ["/opt/ptdesk/jupyter/bin/pip", "install", "--no-index", "--no-deps",
                                           f"/workspace/{wheel.name}"], user=f"{config.uid}:{config.gid}")
    assert rc == 0, out.decode(errors="replace")
    live = cli.json("env", "nb")["live_fingerprint"]
    rc, out, err = cli.run("run", "--name", "likenb", "--like", "nb", "--gpus", "none", "--code", code, "--wait",
                           "--", "python3", "-c", "import ptdesk_demo; print('demo', ptdesk_demo.V)")
    assert rc == 0, out + err
    assert "demo 1.0" in out
    assert job(cli, "likenb")["env_fingerprint"] == live and job(cli, "likenb")["like"] == "nb"
    assert cli.json("env", "likenb") == {"name": "likenb", "image": job(cli, "likenb")["image"], "fingerprint": live,
                                         "like": "nb", "status": "succeeded", "workstation": "local"}
    # After its end, env diff compares the environment it ran in (kept with its record): the same as nb's.
    rc, out, err = cli.run("env", "diff", "likenb", "nb")
    assert rc == 0 and "Same environment" in out, out + err
    # A job in the kind's image: what that image recorded, also after the end.
    rc, out, err = cli.run("run", "--name", "plain", "--gpus", "none", "--code", code, "--wait", "--", "true")
    assert rc == 0, err
    rc, out, err = cli.run("env", "diff", "plain", "nb")
    assert rc == 1 and "plain (job, succeeded)" in out and "ptdesk-demo" in out, out + err
    # The experiment was only read: the same container, running, its install still there.
    after = cli.listed()["nb"]
    assert (after["id"], after["status"]) == (notebook["id"], "running")
    assert cli.json("env", "nb")["live_fingerprint"] == live
    # Cancelling the notebook by mistake says what it is ("No job named 'nb'" sent people to ptdesk jobs).
    assert "'nb' is not a job but an experiment (jupyter)." in cli.fails("cancel", "nb")[0]


def test_jobs_lists_a_workstation_that_does_not_answer_as_its_records_last_said(cli: Ptdesk) -> None:
    """`ptdesk jobs` asks every workstation; one that does not answer is named on stderr (exit 3) and
    its jobs are still listed from their records: an ended one as it ended, a running one unreachable."""
    from ptdesk.config import for_workstation, load_config
    from ptdesk.core.jobs import record as records

    config_file = cli.home / "config.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    with config_file.open("a") as out:
        out.write('\n[workstations.gone]\nengine = "ssh://nobody@127.0.0.1:1"\n')
    config = load_config(cli.env)
    there = for_workstation(config, config.workstations["gone"])
    for name, status in (("far-done", "succeeded"), ("far-running", "running")):
        records.make_folder(there, name)
        records.save(there, records.JobRecord(name=name, owner="me", command=("true",), submitted=1.0,
                                              workstation="gone", status=status))
    rc, out, err = cli.run("jobs")
    assert rc == 3 and "gone" in err
    lines = out.splitlines()
    assert lines[0].split()[0] == "WORKSTATION"
    assert next(line for line in lines if "far-done" in line).split()[:3] == ["gone", "far-done", "succeeded"]
    assert next(line for line in lines if "far-running" in line).split()[:3] == ["gone", "far-running", "unreachable"]
    assert cli.ok("jobs", "--on", "local").startswith("No jobs.")  # the local box has none


def test_a_sweep_on_auto_says_per_job_where_it_went(cli: Ptdesk, code: Path) -> None:
    """--on auto places a sweep job by job (tests/e2e/test_workstations.py spreads one over two
    boxes): each job's line says where and why; with no GPU asked for, the default workstation."""
    rc, out, err = cli.run("run", "--on", "auto", "--gpus", "none", "--name", "au", "--code", code,
                           "--sweep", "x=1,2", "--", "echo", "{x}")
    assert rc == 0, err
    for name in ("au-1", "au-2"):
        assert f"ptdesk: {name} on local (no GPU asked for: the default workstation)." in err, err
    assert "once per sweep" not in err
    assert {j["name"]: j["workstation"] for j in cli.json("jobs")} == {"au-1": "local", "au-2": "local"}


def test_a_missing_image_names_the_build_that_makes_it(cli: Ptdesk, engine: Engine, code: Path) -> None:
    """A job runs the SSH kind's image: when it is missing, the hint builds that one (there is no job image)."""
    rc, _, err = cli.run("run", "--gpus", "none", "--code", code, "--", "true",
                         extra_env={"PTDESK_SSH_IMAGE": "ptdesk-test/not-built-here:latest"})
    assert rc != 0 and "Image ptdesk-test/not-built-here:latest is not on this engine." in err
    assert "hint: Build it with: ptdesk images build ssh" in err, err
    assert job_containers(engine, cli.instance) == [] and not list((cli.home / "jobs").glob("[!.]*"))
