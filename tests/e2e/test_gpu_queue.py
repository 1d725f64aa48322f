"""The GPU queue end to end on the GPU-capable test engine: containers really start on the GPUs
admission gives them, whoever's ptdesk admits, and the owner's ptdesk takes them over."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.workstation import Workstation
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import wait_until


def person(desk: GpuDesk, tmp_path: Path, user: str) -> GpuDesk:
    """Another person on the same box: their own ptdesk home, the same engine and instance."""
    env = {**desk.env, "PTDESK_HOME": str(tmp_path / f"home-{user}"), "USER": user, "LOGNAME": user}
    env.pop("SUDO_USER", None)
    return replace(desk, env=env)


def banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.recv(64)


def core(desk: GpuDesk) -> Workstation:
    """A person's Workstation in this process (its engine: the GPU engine, as their CLI's is)."""
    desk.monkeypatch.setenv("DOCKER_HOST", desk.gpu.docker_host)
    return Workstation(load_config(desk.env))


@pytest.fixture
def two_gpus(gpu_desk: GpuDesk) -> GpuDesk:
    from tests.support.nvml_scenarios import idle

    gpu_desk.install(idle(2))
    return gpu_desk


def test_a_queued_request_starts_on_the_gpu_another_person_frees(two_gpus: GpuDesk, tmp_path: Path) -> None:
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    held = [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    # No free GPU: the refusal suggests the queue, and nothing is made.
    refused = bob.fails("new", "ssh", "--name", "b1", "--gpus", "auto")
    assert "No free GPU" in refused[0] and "--queue" in refused[1]
    queued = bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
    assert queued["status"] == "queued #1"
    assert queued["queue"]["reason"].startswith("needs 1 GPU: 0 free; GPU 0 held by 'a0'; GPU 1 held by 'a1'")
    assert bob.device_ids(queued["id"]) is None and not bob.engine.is_running(queued["id"])
    # Everyone on the box sees the same queue, and that nothing admits while nobody's ptdesk is open.
    listed = ann.json("queue")
    assert [(e["name"], e["owner"], e["position"]) for e in listed["queue"]] == [("b1", "bob", 1)]
    assert listed["admitted_by"] == []
    assert "Nothing on this box admits" in ann.ok("queue")
    assert {e["name"]: e["status"] for e in bob.json("ls", "--all")}["b1"] == "queued #1"

    # Ann gives GPU 1 back; her next ptdesk command admits Bob's request (Bob has none open).
    ann.ok("rm", "--force", "a1")
    assert ann.json("queue")["queue"] == []
    admitted = [c for c in ann.engine.list_managed(ann.instance) if c["Labels"].get("ptdesk.name") == "b1"]
    assert len(admitted) == 1 and admitted[0]["State"] == "running"
    assert ann.device_ids(admitted[0]["Id"]) == ["1"] and ann.gpu_env(admitted[0]["Id"]) == "1"
    # Bob's ptdesk takes it over: running on GPU 1, its connect line, sshd answering with its key.
    mine = {e["name"]: e for e in bob.json("ls", "--all")}["b1"]
    assert (mine["status"], mine["gpus"], mine["id"]) == ("running", [1], admitted[0]["Id"])
    port = int(mine["access"]["port"]) if "port" in (mine.get("access") or {}) else _port(bob, admitted[0]["Id"])
    assert wait_until(lambda: banner(port).startswith(b"SSH-2.0-"), timeout=30, message="sshd answering")
    assert held[0]["gpus"] == [0]


def _port(desk: GpuDesk, container: str) -> int:
    bound = desk.engine.published_port(container, "22/tcp")
    assert bound is not None
    return bound[1]


def test_queue_cancel_is_for_the_owner_only_and_leaves_nothing(two_gpus: GpuDesk, tmp_path: Path) -> None:
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    ann.new("--name", "a0", "--gpus", "all")
    entry = bob.json("new", "ssh", "--name", "b1", "--gpus", "0", "--queue")
    assert "reason" in entry["queue"]
    line = ann.fails("queue", "cancel", "b1", rc=1)[0]
    assert line == "ptdesk: 'b1' is bob's request: only they can cancel it."
    assert bob.fails("queue", "cancel", "nope", rc=1)[0].startswith("ptdesk: No queued request named 'nope'")
    bob.ok("queue", "cancel", "b1")
    assert bob.engine.try_inspect(entry["id"]) is None
    assert bob.json("queue")["queue"] == [] and bob.json("ls", "--all") == [] or all(
        e["name"] != "b1" for e in bob.json("ls", "--all"))
    assert not (bob.home / "experiments" / "b1").exists()


def test_a_request_the_box_can_never_meet_is_refused_not_queued(two_gpus: GpuDesk) -> None:
    line = two_gpus.fails("new", "ssh", "--name", "x", "--gpus", "5", "--queue")[0]
    assert "There is no GPU 5" in line
    assert two_gpus.engine.list_managed(two_gpus.instance) == []
    assert two_gpus.fails("new", "ssh", "--name", "x", "--wait", rc=2)[0].startswith("ptdesk: --wait goes with --queue")


def test_a_plain_launch_never_takes_a_gpu_the_head_of_the_queue_waits_for(two_gpus: GpuDesk, tmp_path: Path) -> None:
    ann, bob, cy = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "cy"))
    ann.new("--name", "a0", "--gpus", "0")
    ann.new("--name", "a1", "--gpus", "1")
    bob.json("new", "ssh", "--name", "b-both", "--gpus", "0,1", "--queue")
    ann.ok("rm", "--force", "a1")  # GPU 1 frees: Bob's request still waits for GPU 0 as well
    waiting = cy.json("queue")["queue"]
    assert [e["name"] for e in waiting] == ["b-both"]
    assert waiting[0]["reason"] == "needs GPUs 0,1: 1 free; GPU 0 held by 'a0'"
    refused = cy.fails("new", "ssh", "--name", "c1", "--gpus", "auto")
    assert "No free GPU" in refused[0] and "queued 'b-both' (bob)" in refused[0], refused
    line = cy.fails("new", "ssh", "--name", "c1", "--gpus", "1")[0]
    assert "GPU 1 is held by" in line and "b-both" in line
    ann.ok("rm", "--force", "a0")
    cy.ok("queue")  # Cy's ptdesk admits Bob's request
    started = {e["name"]: e for e in bob.json("ls", "--all")}["b-both"]
    assert (started["status"], started["gpus"]) == ("running", [0, 1])


def test_the_boxs_service_admits_within_seconds_while_the_owner_has_no_ptdesk_open(
        two_gpus: GpuDesk, tmp_path: Path) -> None:
    import threading

    from ptdesk.commands.lifecycle import _admit_loop
    from ptdesk.core.gpu_desk import GpuDesk as Desk

    ann, bob, box = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "service"))
    holders = [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    entry = bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
    service = core(box)
    stop = threading.Event()
    loop = threading.Thread(target=_admit_loop, args=(service, stop, True), daemon=True)
    loop.start()
    try:
        wait_until(lambda: Desk(service).admitters(), timeout=10, message="the service announced")
        assert "Admitted by ptdesk watch of" in bob.ok("queue")
        # Ann's experiment ends outside ptdesk (docker rm): no ptdesk of Ann's or Bob's runs.
        ann.engine.remove(holders[1]["id"], force=True)
        admitted = wait_until(lambda: [c for c in ann.engine.list_managed(ann.instance)
                                       if c["Labels"].get("ptdesk.name") == "b1" and c["State"] == "running"],
                              timeout=10, message="Bob's request started within 10 s")
        assert ann.device_ids(admitted[0]["Id"]) == ["1"]
        assert ann.engine.try_inspect(entry["id"]) is None
    finally:
        stop.set()
        loop.join(timeout=15)
        service.close()
    assert Desk(core(box)).admitters() == []  # its marker went with it


def test_new_queue_wait_blocks_until_it_runs(two_gpus: GpuDesk, tmp_path: Path) -> None:
    import threading

    from ptdesk.core.gpu_desk import GpuDesk as Desk

    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    holders = [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
    ws = core(bob)
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(Desk(ws).wait_started("b1", timeout=60)), daemon=True)
    waiter.start()
    ann.engine.remove(holders[0]["id"], force=True)
    waiter.join(timeout=90)
    ws.close()
    assert outcome == [True]
    started = {e["name"]: e for e in bob.json("ls")}["b1"]
    assert (started["status"], started["gpus"]) == ("running", [0])


def test_the_owners_open_watcher_follows_its_admitted_request_instead_of_releasing_it(
        two_gpus: GpuDesk, tmp_path: Path) -> None:
    import threading

    from ptdesk.core.gpu_desk import GpuDesk as Desk

    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    holders = [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    entry = bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
    watcher, events = core(bob), []
    stop = threading.Event()
    thread = threading.Thread(target=watcher.watch_events, daemon=True,
                              args=(lambda e: events.append((e.action, e.done)), lambda up, why: None, stop))
    thread.start()
    try:
        wait_until(lambda: watcher.engine_connected, timeout=10, message="bob's watcher connected")
        # The holder goes: Bob's watcher admits (or anyone's ptdesk would); the entry's destroy then
        # reaches Bob's watcher, which takes the admitted container over instead of releasing it.
        ann.engine.remove(holders[0]["id"], force=True)
        Desk(core(ann)).admit()  # Ann's ptdesk may be the one that admits: either way, once
        wait_until(lambda: ("destroy", "admitted") in events, timeout=20, message="the watcher followed it")
        record = watcher.store.experiment("b1")
        assert record is not None and record.status == "running" and record.gpus == (0,)
        assert record.container_id != entry["id"] and ann.engine.is_running(record.container_id)
        assert ("destroy", "released") not in events
    finally:
        stop.set()
        thread.join(timeout=15)
        watcher.close()


def test_any_open_ptdesk_admits_when_a_container_goes_away(two_gpus: GpuDesk, tmp_path: Path) -> None:
    """Someone's dashboard (its event watcher) starts the head of the queue as soon as a holder is
    removed, even outside ptdesk; here the open one is Cy's, who has nothing in the queue."""
    import threading

    ann, bob, cy = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "cy"))
    holders = [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
    watcher = core(cy)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.watch_events, daemon=True,
                              args=(lambda e: None, lambda up, why: None, stop))
    thread.start()
    try:
        wait_until(lambda: watcher.engine_connected, timeout=10, message="cy's watcher connected")
        ann.engine.remove(holders[1]["id"], force=True)  # docker rm -f: no ptdesk of Ann's involved
        wait_until(lambda: [c for c in ann.engine.list_managed(ann.instance)
                            if c["Labels"].get("ptdesk.name") == "b1" and c["State"] == "running"],
                   timeout=10, message="Bob's request started within 10 s")
    finally:
        stop.set()
        thread.join(timeout=15)
        watcher.close()


def test_the_owner_hears_once_that_a_queued_request_started(two_gpus: GpuDesk, tmp_path: Path) -> None:
    """Bob's route (a real HTTP webhook, through apprise) hears that his queued experiment started,
    with its connect line, once: however many of his ptdesk commands see it admitted."""
    from tests.support.helpers import run_cli
    from tests.support.receivers import webhook_server

    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    [ann.new("--name", f"a{i}", "--gpus", str(i)) for i in range(2)]
    with webhook_server() as (url, posts):
        code, _, err = run_cli(["notify", "add", "hook", "--events", "started"], bob.env, input=url + "\n")
        assert code == 0, err
        bob.json("new", "ssh", "--name", "b1", "--gpus", "auto", "--queue")
        assert posts == []  # filed, not started: nothing said yet
        ann.ok("rm", "--force", "a0")  # ann's command admits bob's request
        # Bob's ptdesk takes it over once the entry is gone (any of his commands), and says so...
        wait_until(lambda: bob.json("ls", "--all") and posts, timeout=60, message="the webhook to hear it")
        mine = {e["name"]: e for e in bob.json("ls", "--all")}["b1"]  # ...once: seeing it again says nothing
        assert mine["status"] == "running"
    assert len(posts) == 1 and posts[0]["title"] == "ptdesk: 'b1' started"
    assert mine["ssh"]["command"] in posts[0]["message"]  # its connect line
