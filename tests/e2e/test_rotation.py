"""Key rotation, end to end: new key next to the old, proven, old retired and proven refused; a
retired key never comes back; failures mid-way never lock anyone out. Tests that stop, restart or
break containers launch their own in a per-test instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.access.sshcheck import LoginResult, try_login
from ptdesk.core.collaborators import grants, rotation
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from tests.support.helpers import wait_until

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py
from tests.support.collab_support import (
    add,
    assert_private,
    attempt,
    authorized,
    keep_copy,
    logs_in,
    openssh,
    pending_of,
)

# --- rotation -----------------------------------------------------------------------------------


def test_rotation_over_two_containers_leaves_a_third_person_untouched(
        boxes: dict, module_desk: Ptdesk, tmp_path: Path, keygen: Callable[[str], Path]) -> None:
    old = keep_copy(add(module_desk, "ray")["identity_file"], tmp_path / "ray-old" / "id_ed25519")
    third = keygen("sam")
    add(module_desk, "sam", "--pubkey", f"{third}.pub")
    for who in ("ray", "sam"):
        for box in ("m1", "m2"):
            module_desk.ok("grant", who, box)
    assert all(logs_in(module_desk, box, old, "ray") for box in ("m1", "m2"))

    result = module_desk.json("collab", "rotate", "ray")
    assert {"name", "old_fingerprint", "fingerprint", "identity_file", "containers"} <= set(result)
    assert result["old_fingerprint"] != result["fingerprint"]
    assert [(c["name"], c["status"], c["verified"]) for c in result["containers"]] == \
        [("m1", "rotated", True), ("m2", "rotated", True)]

    new = Path(result["identity_file"])
    assert_private(new)
    for box in ("m1", "m2"):
        assert not logs_in(module_desk, box, old, "ray"), f"old key still works on {box}"
        assert logs_in(module_desk, box, new, "ray")
        assert logs_in(module_desk, box, third, "sam"), f"sam lost access to {box}"
    # The person gets the new key with export; OpenSSH gets in with it.
    out = tmp_path / "ray-bundle"
    module_desk.ok("collab", "export", "ray", out, "--dest", out)
    assert openssh(out / "ssh_config", "m2").returncode == 0
    # The previous key is gone from the host once nothing waits on it.
    assert not (new.parent / grants.PREVIOUS).exists()
    entry = [e for e in module_desk.json("audit") if e["action"] == "collab-rotate"][-1]
    assert entry["target"] == "ray" and entry["actor"]
    assert entry["detail"]["old_fingerprint"] == result["old_fingerprint"]
    assert entry["detail"]["fingerprint"] == result["fingerprint"]


def test_a_container_stopped_during_rotation_comes_back_with_only_the_new_key(
        cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    cli.new("ssh", "--name", "up", "--cpus", "1")
    cli.new("ssh", "--name", "down", "--cpus", "1")
    made = add(cli, "tom")
    old = keep_copy(made["identity_file"], tmp_path / "tom-old" / "id_ed25519")
    cli.ok("grant", "tom", "up")
    cli.ok("grant", "tom", "down")
    cli.ok("stop", "down")

    result = cli.json("collab", "rotate", "tom")
    by_name = {c["name"]: c for c in result["containers"]}
    assert by_name["up"]["status"] == "rotated" and by_name["up"]["verified"]
    assert by_name["down"]["status"] == "rotated" and not by_name["down"]["verified"]
    # Whoever starts it next, the stopped container's file already holds the new key, not the old.
    text = authorized(engine, cli, "down", "tom")
    new_public = next(c for c in cli.json("collab", "ls") if c["name"] == "tom")["public_key"]
    assert new_public.split()[1] in text and made["public_key"].split()[1] not in text
    assert pending_of(cli, "tom") == ["down"]  # proven only once it runs

    cli.ok("start", "down")
    new = Path(result["identity_file"])
    assert logs_in(cli, "down", new, "tom")
    assert not logs_in(cli, "down", old, "tom")
    assert logs_in(cli, "up", new, "tom") and not logs_in(cli, "up", old, "tom")
    assert pending_of(cli, "tom") == []
    finished = [e for e in cli.json("audit") if e["action"] == "collab-rotate-finish"]
    assert finished and finished[-1]["detail"]["verified"] is True


def test_a_retired_key_never_logs_in_again_when_sshd_is_slow_to_come_up(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotation said the old key is retired in a stopped container; someone starts it, and the
    start event's probe finds sshd not up yet. Before, the old key was put back and logged in
    again; now the probe waits for sshd on the readiness schedule, and the old key stays out."""
    cid = cli.new("ssh", "--name", "late", "--cpus", "1")["id"]
    old = keep_copy(add(cli, "zed")["identity_file"], tmp_path / "zed-old" / "id_ed25519")
    cli.ok("grant", "zed", "late")
    cli.ok("stop", "late")
    result = cli.json("collab", "rotate", "zed")
    assert result["containers"][0]["status"] == "rotated"  # "the old key is removed" was promised here
    new = Path(result["identity_file"])

    real_login = rotation._login
    not_up_yet = iter([LoginResult(False, "unreachable: sshd is still starting")] * 2)

    def slow_sshd(w: Workstation, experiment: str, key_file: Path) -> LoginResult:
        # The first probes meet an sshd that is not listening yet (as right after a start event).
        return next(not_up_yet, None) or real_login(w, experiment, key_file)

    monkeypatch.setattr(rotation, "_login", slow_sshd)
    engine.start(cid)  # behind ptdesk's back, as a restart policy or `docker start` would
    outcome = rotation.finish_pending(ws, "late")["zed"]  # what the watcher's start event runs
    monkeypatch.undo()
    assert (outcome.status, outcome.verified) == ("rotated", True), outcome
    assert logs_in(cli, "late", new, "zed") and not logs_in(cli, "late", old, "zed")
    assert old.read_bytes() and pending_of(cli, "zed") == []


def test_a_new_key_that_cannot_be_proven_leaves_the_retired_key_out(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the proof never succeeds (sshd never answers in time), the retired key is not
    restored: the grant is reported pending with the new key only."""
    cid = cli.new("ssh", "--name", "mute", "--cpus", "1")["id"]
    made = add(cli, "yan")
    old = keep_copy(made["identity_file"], tmp_path / "yan-old" / "id_ed25519")
    cli.ok("grant", "yan", "mute")
    cli.ok("stop", "mute")
    cli.json("collab", "rotate", "yan")
    monkeypatch.setattr(rotation, "_login", lambda w, e, k: LoginResult(False, "unreachable: no answer"))
    monkeypatch.setattr(ws, "config", replace(ws.config, ready_timeout=1.0))
    engine.start(cid)
    outcome = rotation.finish_pending(ws, "mute")["yan"]
    monkeypatch.undo()
    assert outcome.status == "pending" and "retired key stays retired" in outcome.detail
    assert made["public_key"].split()[1] not in authorized(engine, cli, "mute", "yan")
    wait_until(lambda: attempt(cli, "mute", old, "yan").detail.startswith("refused"), timeout=60,
               message="sshd to answer (and refuse the retired key)")
    assert pending_of(cli, "yan") == ["mute"]


def test_a_person_who_brought_their_own_key_is_rotated_in_one_step(
        cli: Ptdesk, engine: Engine, keygen: Callable[[str], Path]) -> None:
    """Before, `collab rotate` refused them, and its workaround (rm, add, grant) locked them out in
    between. Now `--pubkey NEW.pub` swaps the key in one atomic render in every container."""
    old, new = keygen("pia-old"), keygen("pia-new")
    cli.new("ssh", "--name", "run", "--cpus", "1")
    cli.new("ssh", "--name", "rest", "--cpus", "1")
    frozen = cli.new("ssh", "--name", "frozen", "--cpus", "1")["id"]
    add(cli, "pia", "--pubkey", f"{old}.pub")
    for box in ("run", "rest", "frozen"):
        cli.ok("grant", "pia", box)
    cli.ok("stop", "rest")
    engine.api.pause(frozen)
    assert logs_in(cli, "run", old, "pia")

    rc, out, _ = cli.run("collab", "rotate", "pia", "--pubkey", f"{new}.pub", "--json")
    result = json.loads(out)
    assert rc != 0  # unfinished on the paused one, and said so
    assert {c["name"]: c["status"] for c in result["containers"]} == \
        {"run": "rotated", "rest": "rotated", "frozen": "pending"}
    assert result["identity_file"] is None
    assert logs_in(cli, "run", new, "pia") and not logs_in(cli, "run", old, "pia")
    cli.ok("start", "rest")
    assert logs_in(cli, "rest", new, "pia") and not logs_in(cli, "rest", old, "pia")
    # Unpaused, `collab rotate pia` finishes the job there: the old key does not stay behind.
    engine.api.unpause(frozen)
    finished = cli.json("collab", "rotate", "pia")
    assert finished["resumed"] and {c["name"]: c["status"] for c in finished["containers"]}["frozen"] == "rotated"
    assert logs_in(cli, "frozen", new, "pia") and not logs_in(cli, "frozen", old, "pia")
    people = {p["name"]: p for p in cli.json("collab", "ls")}
    assert people["pia"]["pending"] == [] and people["pia"]["fingerprint"] == result["fingerprint"]
    # The wrong way round is one clear line: a person whose key ptdesk made gets one made again.
    add(cli, "raj")
    line = cli.fails("collab", "rotate", "raj", "--pubkey", f"{new}.pub")[0]
    assert "ptdesk made raj's key" in line


def _sshd_pid(engine: Engine, container: str) -> int:
    top = engine.api.top(container)
    column = top["Titles"].index("CMD")
    rows = [row for row in top["Processes"] if "sshd" in row[column] and "-D" in row[column]]
    assert rows, top
    return int(rows[0][top["Titles"].index("PID")])


def test_failures_injected_mid_rotation_never_lock_the_person_out(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {name: cli.new("ssh", "--name", name, "--cpus", "1")["id"] for name in ("ok", "killed", "removed")}
    old = keep_copy(add(cli, "uma")["identity_file"], tmp_path / "uma-old" / "id_ed25519")
    for name in ids:
        cli.ok("grant", "uma", name)

    # Once the new key sits next to the old one everywhere, and before anything is proven:
    # kill the sshd of one container (it exits) and remove another with `docker rm -f`.
    real_login = rotation._login
    injected = []

    def login_with_failures(d: Workstation, experiment: str, key_file: Path) -> LoginResult:
        if not injected:
            injected.append(experiment)
            os.kill(_sshd_pid(engine, ids["killed"]), signal.SIGKILL)
            subprocess.run(["docker", "rm", "-f", ids["removed"]], check=True, capture_output=True)
            wait_until(lambda: not engine.inspect(ids["killed"])["State"]["Running"], timeout=30,
                       message="the container whose sshd was killed to exit")
        return real_login(d, experiment, key_file)

    monkeypatch.setattr(rotation, "_login", login_with_failures)
    rc, out, err = cli.run("collab", "rotate", "uma", "--json")
    monkeypatch.undo()
    result = json.loads(out)
    by_name = {c["name"]: c for c in result["containers"]}
    assert by_name["ok"]["status"] == "rotated" and by_name["ok"]["verified"]
    assert by_name["killed"]["status"] == "pending" and "old key stays valid" in by_name["killed"]["detail"]
    assert by_name["removed"]["status"] != "rotated"
    # Non-zero, and the one line says where it is unfinished.
    assert rc != 0 and "killed" in err and "removed" in err and "ok (" not in err
    new = Path(result["identity_file"])

    # Everywhere that still exists, one of the two keys gets in: on "ok" the new one; on "killed",
    # started again behind ptdesk's back (so nothing finished the rotation there), both still do.
    assert logs_in(cli, "ok", new, "uma") and not logs_in(cli, "ok", old, "uma")
    engine.start(ids["killed"])
    bound = engine.published_port(ids["killed"], "22/tcp")
    assert bound
    host_key = cli.listed()["killed"]["ssh"]["known_hosts"].split(None, 1)[1]

    def at_killed(key: Path) -> LoginResult:
        return try_login(cli.config.connect_host, bound[1], "uma", key, host_key)

    wait_until(lambda: at_killed(old).ok, timeout=60, message="the old key to log in again")
    assert at_killed(new).ok
    # The removed one was released by the CLI's reconciliation (its grants with it).
    assert "removed" not in cli.listed()

    # Running rotate again finishes the job instead of starting another rotation.
    again = cli.json("collab", "rotate", "uma")
    assert again["resumed"] is True and again["fingerprint"] == result["fingerprint"]
    assert {c["name"]: (c["status"], c["verified"]) for c in again["containers"]} == \
        {"ok": ("rotated", True), "killed": ("rotated", True)}
    assert at_killed(new).ok and at_killed(old).detail.startswith("refused")
    assert pending_of(cli, "uma") == []
    assert not (new.parent / grants.PREVIOUS).exists()
