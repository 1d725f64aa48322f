"""The GPU queue end to end on the GPU-capable test engine: containers really start on the GPUs
admission gives them, whoever's ptdesk admits, and the owner's ptdesk takes them over."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from e2e.gpu_engine import GpuDesk
from helpers import wait_until


def person(desk: GpuDesk, tmp_path: Path, user: str) -> GpuDesk:
    """Another person on the same box: their own ptdesk home, the same engine and instance."""
    env = {**desk.env, "PTDESK_HOME": str(tmp_path / f"home-{user}"), "USER": user, "LOGNAME": user}
    env.pop("SUDO_USER", None)
    return replace(desk, env=env)


def banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.recv(64)


@pytest.fixture
def two_gpus(gpu_desk: GpuDesk) -> GpuDesk:
    from nvml_scenarios import idle

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
