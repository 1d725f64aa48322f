"""A revoked person leaves nothing running: each person has their own account in an SSH experiment.

Each test performs the attack on the real engine with the real OpenSSH client: a collaborator's
open session and a process they detached survive revoke, collab rm, rotation and expiry; a line
appended to the owner's ~/.bashrc runs in the owner's next shell; a GPU process is attributed to
the owner whoever runs it. Before per-person accounts every one of these worked for the attacker.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pynvml
import pytest

from ptdesk.core.access.accounts import UID_BASE, share_gid
from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from tests.support import nvml_scenarios  # noqa: E402
from tests.support.accounts_support import DETACH, Watcher, account_pids, host_pids, owner_ssh, person
from tests.support.helpers import wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk


@pytest.fixture(scope="module")
def boxes(module_desk: Ptdesk) -> dict[str, dict]:
    """acc and acc2 get collaborators; solo never does (the owner-only experiment)."""
    return {name: module_desk.new("ssh", "--name", name, "--cpus", "1") for name in ("acc", "acc2", "solo")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("people")


def stored(desk: Ptdesk, name: str):  # noqa: ANN201 - a CollaboratorRecord
    ws = Workstation(desk.config)
    try:
        record = ws.store.collaborator(name)
        assert record is not None
        return record
    finally:
        ws.close()


def uid_of(desk: Ptdesk, name: str) -> int:
    uid = stored(desk, name).uid
    assert uid is not None
    return uid


def ended_entries(desk: Ptdesk, who: str) -> list[dict]:
    return [e for e in desk.json("audit") if e["action"] == "ended-processes" and e["detail"]["person"] == who]


def test_revoke_ends_the_open_session_and_what_was_left_running(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                                engine: Engine) -> None:
    ann = person(module_desk, "ann", folder, "acc")
    cid = boxes["acc"]["id"]
    assert ann.ssh("acc", DETACH).returncode == 0
    session = ann.session("acc", "echo in; sleep 40; echo STILL-HERE")
    wait_until(lambda: module_desk.listed()["acc"].get("logged_in") == ["ann"], timeout=20,
               message="ls to show ann logged in")
    before = account_pids(engine, cid, "ann")
    assert len(before) >= 3  # the session's sshd, its sleep, the detached loop

    started = time.monotonic()
    out = module_desk.ok("revoke", "ann", "acc")
    output, _ = session.communicate(timeout=15)
    assert time.monotonic() - started < 10
    assert "STILL-HERE" not in output and session.returncode != 0
    assert "ended" in out and "1 login session" in out, out
    assert account_pids(engine, cid, "ann") == []
    assert module_desk.listed()["acc"]["logged_in"] == []
    entry = ended_entries(module_desk, "ann")[-1]
    assert entry["target"] == "acc" and entry["detail"]["why"] == "revoke"
    assert entry["detail"]["ended"] == len(entry["detail"]["pids"]) >= len(before)
    assert ann.ssh("acc", "true").returncode != 0  # and no new login


def test_collab_rm_ends_their_processes_in_every_experiment(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                            engine: Engine) -> None:
    bo = person(module_desk, "bo", folder, "acc", "acc2")
    for box in ("acc", "acc2"):
        assert bo.ssh(box, DETACH).returncode == 0
        assert account_pids(engine, boxes[box]["id"], "bo")
    out = module_desk.ok("collab", "rm", "bo")
    assert "acc: ended" in out and "acc2: ended" in out, out
    for box in ("acc", "acc2"):
        assert account_pids(engine, boxes[box]["id"], "bo") == []


def detached_loop(engine: Engine, container: str, account: str) -> set[int]:
    """The pid of DETACH's shell loop (its `sleep` is a new process every 5 s)."""
    rc, out = engine.exec(container, ["ps", "-o", "pid=,comm=", "-u", account])
    return {int(pid) for pid, comm in (line.split() for line in out.decode().splitlines()) if comm == "sh"}


def test_a_routine_rotation_keeps_what_they_run(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                engine: Engine) -> None:
    """A new laptop is no reason to end a detached training run: only the key changes."""
    cw = person(module_desk, "cw", folder, "acc")
    assert cw.ssh("acc", DETACH).returncode == 0
    running = detached_loop(engine, boxes["acc"]["id"], "cw")
    assert running
    ws = Workstation(module_desk.config)
    try:  # what the dashboard shows before asking whether to end them
        listed = ws.running_processes("cw")
    finally:
        ws.close()
    assert set(listed) == {"acc"} and running <= {int(row.split()[0]) for row in listed["acc"]}
    assert f"{min(running)} sh" in listed["acc"]
    result = module_desk.json("collab", "rotate", "cw")
    assert result["containers"][0]["status"] == "rotated"
    assert "keep running" in result["containers"][0]["detail"]
    assert detached_loop(engine, boxes["acc"]["id"], "cw") == running


def test_a_routine_rotation_of_a_brought_key_keeps_what_they_run(
        boxes: dict, module_desk: Ptdesk, engine: Engine, keygen) -> None:  # noqa: ANN001 - a fixture
    old, new = keygen("cv-old"), keygen("cv-new")
    module_desk.ok("collab", "add", "cv", "--pubkey", f"{old}.pub")
    module_desk.ok("grant", "cv", "acc2")
    ssh = boxes["acc2"]["ssh"]
    host_key = ssh["known_hosts"].split(None, 1)[1]
    assert try_login(ssh["host"], ssh["port"], "cv", old, host_key, command=DETACH).ok
    running = detached_loop(engine, boxes["acc2"]["id"], "cv")
    assert running
    module_desk.ok("collab", "rotate", "cv", "--pubkey", f"{new}.pub")
    assert detached_loop(engine, boxes["acc2"]["id"], "cv") == running
    assert not try_login(ssh["host"], ssh["port"], "cv", old, host_key, command="true").ok


def test_retiring_a_compromised_key_ends_what_it_started(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                         engine: Engine) -> None:
    cy = person(module_desk, "cy", folder, "acc")
    assert cy.ssh("acc", DETACH).returncode == 0  # with the key that is about to be retired
    result = module_desk.json("collab", "rotate", "cy", "--end-sessions")
    assert result["containers"][0]["status"] == "rotated" and "ended" in result["containers"][0]["detail"]
    assert account_pids(engine, boxes["acc"]["id"], "cy") == []
    # The new key logs in to cy's own account.
    ssh = boxes["acc"]["ssh"]
    login = try_login(ssh["host"], ssh["port"], "cy", Path(result["identity_file"]),
                      ssh["known_hosts"].split(None, 1)[1], command="id -un")
    assert login.ok and login.output.strip() == "cy", login


def _expiring(module_desk: Ptdesk, folder: Path, engine: Engine, boxes: dict, name: str) -> tuple[float, str]:
    """A person whose access expires in 20 s, with a detached process and an open session."""
    who = person(module_desk, name, folder, "acc", add_args=("--expires", "20s"))
    expires = stored(module_desk, name).expires
    assert expires is not None
    assert who.ssh("acc", DETACH).returncode == 0
    who.session("acc", "sleep 120")
    cid = boxes["acc"]["id"]
    wait_until(lambda: len(account_pids(engine, cid, name)) >= 3, timeout=15, message=f"{name}'s session")
    return expires, cid


def test_an_expired_persons_processes_end_at_the_next_reconcile(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                                engine: Engine) -> None:
    expires, cid = _expiring(module_desk, folder, engine, boxes, "di")
    ssh = boxes["acc"]["ssh"]
    key = Path(module_desk.home / "keys" / "collab" / "di" / "id_ed25519")
    wait_until(lambda: time.time() > expires + 1, timeout=40, message="the expiry to pass")
    # sshd refuses the expired key by itself, but what di runs keeps running until ptdesk acts.
    assert try_login(ssh["host"], ssh["port"], "di", key, ssh["known_hosts"].split(None, 1)[1]).detail \
        .startswith("refused")
    assert account_pids(engine, cid, "di")
    report = module_desk.json("reconcile")
    assert any(line.startswith("di in acc:") for line in report.get("ended", [])), report
    assert account_pids(engine, cid, "di") == []
    assert ended_entries(module_desk, "di")[-1]["detail"]["why"] == "expired"


def test_an_expired_persons_processes_end_in_ptdesk_watch(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                          engine: Engine) -> None:
    watcher = Watcher.start(module_desk.env)
    try:
        wait_until(lambda: any('"type": "start"' in line for line in watcher.lines), timeout=30,
                   message="ptdesk watch to start")
        expires, cid = _expiring(module_desk, folder, engine, boxes, "ed")
        wait_until(lambda: any('"type": "expired"' in line and '"person": "ed"' in line for line in watcher.lines),
                   timeout=60, message="ptdesk watch to end ed's processes")
        assert time.time() - expires < 20  # within its loop's few seconds, not at some later command
        assert account_pids(engine, cid, "ed") == []
        line = next(json.loads(x) for x in watcher.lines if '"type": "expired"' in x)
        assert line["count"] >= 3 and line["sessions"] == 1
    finally:
        watcher.stop()


def test_nobody_writes_into_another_persons_home_or_dotfiles(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                             tmp_path: Path) -> None:
    fa = person(module_desk, "fa", folder, "acc")
    planted = fa.ssh("acc", "echo 'touch /tmp/ran-fas-line' >> /home/ptdesk/.bashrc")
    assert planted.returncode != 0 and "Permission denied" in planted.stderr
    assert fa.ssh("acc", "ls /home/ptdesk").returncode != 0
    # The owner's next interactive shell runs only the owner's own dotfiles.
    shell = owner_ssh(module_desk, boxes["acc"], "bash -i -c true 2>/dev/null; test -e /tmp/ran-fas-line && "
                                                 "echo RAN || echo clean", tmp_path)
    assert shell.stdout.strip().endswith("clean"), shell
    # Nor the other way round: the owner cannot plant anything in fa's home.
    assert owner_ssh(module_desk, boxes["acc"], "echo x >> /home/fa/.bashrc", tmp_path).returncode != 0


def test_the_workspace_is_shared_and_the_owner_keeps_control(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                             tmp_path: Path) -> None:
    gi = person(module_desk, "gi", folder, "acc")
    assert gi.ssh("acc", "mkdir /workspace/gi-runs && echo one > /workspace/gi-runs/notes").returncode == 0
    # The owner changes and deletes what gi wrote, inside the container ...
    edit = owner_ssh(module_desk, boxes["acc"], "echo two >> /workspace/gi-runs/notes && cat /workspace/gi-runs/notes",
                     tmp_path)
    assert edit.returncode == 0 and edit.stdout.split() == ["one", "two"], edit
    # ... and on the host gi's files carry the share group (no host group has its gid), group-writable,
    # in setgid folders, with an ACL entry for the owner's uid (the owner is in no such host group).
    ws = Workstation(module_desk.config)
    try:
        workspace = Path(ws.store.experiment("acc").workspace)
    finally:
        ws.close()
    made = workspace / "gi-runs"
    for path in (made, made / "notes"):
        info = path.stat()
        assert info.st_gid == share_gid(module_desk.config.uid), (path, info.st_gid)
        assert info.st_mode & stat.S_IWGRP, (path, oct(info.st_mode))
        assert os.getxattr(path, "system.posix_acl_access")
        assert info.st_uid == uid_of(module_desk, "gi") >= UID_BASE
    assert made.stat().st_mode & stat.S_ISGID and workspace.stat().st_mode & stat.S_ISGID
    assert owner_ssh(module_desk, boxes["acc"], "rm -r /workspace/gi-runs", tmp_path).returncode == 0


def test_the_owner_only_experiment_stays_as_simple_as_it_was(boxes: dict, module_desk: Ptdesk,
                                                             engine: Engine) -> None:
    cid = boxes["solo"]["id"]
    rc, out = engine.exec(cid, ["sh", "-c", "getent passwd | awk -F: '$3 >= 1900000000'; getent group ptdesk-login; "
                                            "test -e /etc/ptdesk/accounts && echo ACCOUNTS; stat -c %a /workspace"])
    lines = out.decode().split()
    assert rc == 0 and lines[0].startswith("ptdesk-login:") and lines[0].endswith(":ptdesk"), lines
    assert "ACCOUNTS" not in lines and not int(lines[-1], 8) & 0o2020, lines  # not shared, not setgid


def test_a_gpu_process_is_attributed_to_the_person_who_runs_it(boxes: dict, module_desk: Ptdesk, folder: Path,
                                                               engine: Engine, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hy = person(module_desk, "hy", folder, "acc")
    cid = boxes["acc"]["id"]
    assert hy.ssh("acc", "setsid nohup sleep 301 >/dev/null 2>&1 </dev/null &").returncode == 0
    assert owner_ssh(module_desk, boxes["acc"], "setsid nohup sleep 302 >/dev/null 2>&1 </dev/null &",
                     tmp_path).returncode == 0
    theirs = wait_until(lambda: host_pids(cid, uid_of(module_desk, "hy"), "sleep"), timeout=10, message="hy's sleep")
    mine = wait_until(lambda: host_pids(cid, module_desk.config.uid, "sleep"), timeout=10, message="the owner's")
    for name, fn in nvml_scenarios.healthy(pids=(theirs[0], mine[0]), gpus=1).functions().items():
        monkeypatch.setattr(pynvml, name, fn)
    processes = {p["pid"]: p for p in module_desk.json("gpus")["gpus"][0]["processes"]}
    owner = boxes["acc"]["owner"]
    assert (processes[theirs[0]]["person"], processes[theirs[0]]["owner"], processes[theirs[0]]["experiment"]) == \
        ("hy", owner, "acc")
    assert processes[mine[0]]["person"] == owner
    assert f"hy (collaborator of {owner})" in module_desk.ok("gpus")
