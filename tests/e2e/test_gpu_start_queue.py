"""`ptdesk start NAME --queue`: a stopped experiment whose GPUs were taken after its hold waits in
the same GPU queue as new requests, is admitted by anyone's ptdesk when GPUs free, and comes back
with everything it had; taken out of the queue it stays, stopped, losing nothing.

On the GPU test engine (containers with GPU device requests really start), an NVML scenario of
two idle GPUs, and a clock the test moves (ptdesk.core.base.clock) instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.base import clock
from ptdesk.core.kinds.ssh import HOST_KEY_IN_CONTAINER
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.gpus_gone import GpusGone as GpusGoneDialog
from tests.e2e.test_gpu_queue import banner, person
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import JUPYTER_IMAGE, settle, wait_until
from tests.support.nvml_scenarios import idle
from tests.support.wheels import make_wheel

HOLD = 60.0  # gpu_hold_after_stop = "1m"


@pytest.fixture
def desk(gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> GpuDesk:
    """Two idle GPUs, a one-minute hold, and the clock moved past it (the engine's stop times stay real)."""
    gpu_desk.install(idle(2))
    _short_hold(gpu_desk)
    monkeypatch.setattr(clock, "now", lambda: time.time() + HOLD + 1)
    return gpu_desk


def _short_hold(desk: GpuDesk) -> GpuDesk:
    desk.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (desk.home / "config.toml").write_text('gpu_hold_after_stop = "1m"\n')
    return desk


def _exec(desk: GpuDesk, container: str, command: str, user: str = "root") -> str:
    code, out = desk.engine.exec(container, ["sh", "-c", command], user=user)
    assert code == 0, out
    return out.decode().strip()


def _stopped_and_taken(desk: GpuDesk, tmp_path: Path) -> tuple[dict, GpuDesk, dict]:
    """g1 (this desk's, on GPU 0, a file made inside, bob granted) stopped; bob holds both GPUs."""
    g1 = desk.new("--name", "g1", "--gpus", "0")
    _exec(desk, g1["id"], "echo kept > /opt/made-inside.txt")
    desk.ok("collab", "add", "bob")
    desk.ok("grant", "bob", "g1")
    desk.ok("stop", "g1")
    bob = _short_hold(person(desk, tmp_path, "bob"))
    held = bob.new("--name", "b-all", "--gpus", "all")  # the hold is over: GPU 0 is free for him
    return g1, bob, held


def _entries(desk: GpuDesk) -> list[dict]:
    return [c for c in desk.engine.list_managed(desk.instance) if c["Labels"].get("ptdesk.name") == "g1"]


def test_start_queue_files_it_and_anyones_ptdesk_brings_it_back_with_everything(
        desk: GpuDesk, tmp_path: Path) -> None:
    g1, bob, held = _stopped_and_taken(desk, tmp_path)
    granted = desk.engine.read_file(g1["id"], "/etc/ptdesk/authorized_keys/bob")
    host_key = desk.engine.read_file(g1["id"], HOST_KEY_IN_CONTAINER)
    assert "--queue" in desk.fails("start", "g1")[1]

    queued = desk.json("start", "g1", "--queue")
    assert queued["status"] == "queued #1" and queued["queue"]["restart"] is True
    assert queued["queue"]["gpus"] == "any:1"  # as many as it had, any of them
    assert queued["queue"]["reason"].startswith("needs 1 GPU: 0 free; GPU 0 held by 'b-all'")
    [entry] = _entries(desk)
    assert entry["State"] == "created" and desk.device_ids(entry["Id"]) is None
    assert desk.engine.read_file(entry["Id"], "/opt/made-inside.txt") == b"kept\n"  # nothing lost meanwhile
    # Everyone sees it in the one queue, and the row says so.
    assert [(e["name"], e["position"]) for e in bob.json("queue")["queue"]] == [("g1", 1)]
    assert {e["name"]: e["status"] for e in desk.json("ls", "--all")}["g1"] == "queued #1"
    refused = desk.fails("start", "g1", rc=1)
    assert "waits in the GPU queue" in refused[0] and "ptdesk queue cancel g1" in refused[1]

    # Bob gives the GPUs back; his own next command admits it (this person has no ptdesk open).
    bob.ok("rm", "--force", "b-all")
    bob.ok("queue")
    [running] = _entries(desk)
    assert running["State"] == "running" and desk.engine.try_inspect(entry["Id"]) is None
    back = {e["name"]: e for e in desk.json("ls", "--all")}["g1"]
    assert (back["status"], back["id"], len(back["gpus"])) == ("running", running["Id"], 1)
    assert desk.device_ids(running["Id"]) == [str(back["gpus"][0])]
    # Everything it had: the file made inside, bob's grant and account, its host key, name and port.
    assert _exec(desk, running["Id"], "cat /opt/made-inside.txt") == "kept"
    assert desk.engine.read_file(running["Id"], "/etc/ptdesk/authorized_keys/bob") == granted
    assert desk.engine.exec(running["Id"], ["id", "bob"])[0] == 0
    assert desk.engine.read_file(running["Id"], HOST_KEY_IN_CONTAINER) == host_key
    assert back["ssh"]["port"] == g1["ssh"]["port"]
    assert back["ssh"]["host_key_fingerprint"] == g1["ssh"]["host_key_fingerprint"]
    assert wait_until(lambda: banner(int(back["ssh"]["port"])).startswith(b"SSH-2.0-"), timeout=30,
                      message="sshd answering on its old port")
    assert desk.engine.client.images.list(filters={"reference": "*g1*"}) == []  # no commit was made
    assert held["gpus"] == [0, 1]


def test_queue_cancel_leaves_a_refiled_experiment_stopped_with_all_it_had(desk: GpuDesk, tmp_path: Path) -> None:
    g1, bob, held = _stopped_and_taken(desk, tmp_path)
    desk.json("start", "g1", "--queue", "--gpus", "0")
    assert "only they can cancel it" in bob.fails("queue", "cancel", "g1", rc=1)[0]
    said = desk.ok("queue", "cancel", "g1")
    assert "it is stopped, with everything it had" in said
    assert desk.json("queue")["queue"] == []
    listed = {e["name"]: e for e in desk.json("ls", "--all")}["g1"]
    assert (listed["status"], listed["gpus"]) == ("exited", [0])  # the GPU it had, named, not booked
    [stopped] = _entries(desk)
    assert desk.device_ids(stopped["Id"]) is None
    assert desk.engine.read_file(stopped["Id"], "/opt/made-inside.txt") == b"kept\n"
    # A plain start asks again (GPU 0 is still bob's); once free, it comes back on it.
    assert "GPU 0 is held by experiment 'b-all'" in desk.fails("start", "g1")[0]
    bob.ok("rm", "--force", "b-all")
    started = desk.json("start", "g1")
    assert (started["status"], started["gpus"]) == ("running", [0]) and desk.device_ids(started["id"]) == ["0"]
    assert _exec(desk, started["id"], "cat /opt/made-inside.txt") == "kept"
    assert started["ssh"]["port"] == g1["ssh"]["port"] and held["gpus"] == [0, 1]


def test_start_queue_wait_blocks_until_a_jupyter_experiment_runs_with_its_pip_package(
        desk: GpuDesk, tmp_path: Path) -> None:
    desk.gpu.ensure_image(JUPYTER_IMAGE)
    env = {"PTDESK_JUPYTER_IMAGE": JUPYTER_IMAGE}
    lab = desk.json("new", "jupyter", "--name", "lab", "--cpus", "1", "--gpus", "1", extra_env=env)
    config = load_config(desk.env)
    wheel = make_wheel(config.workspaces / "lab")  # the container's /workspace
    user = f"{config.uid}:{config.gid}"
    _exec(desk, lab["id"], f"cp /workspace/{wheel.name} /tmp/", user)  # root has no DAC override in there
    pip = "/opt/ptdesk/jupyter/bin/pip"  # into the image's environment: the writable layer
    _exec(desk, lab["id"], f"{pip} install --no-index --no-deps --no-cache-dir /tmp/{wheel.name}")
    desk.ok("stop", "lab")
    bob = _short_hold(person(desk, tmp_path, "bob"))
    held = bob.new("--name", "b-all", "--gpus", "all")
    outcome: list[dict] = []
    waiter = threading.Thread(target=lambda: outcome.append(
        desk.json("start", "lab", "--queue", "--wait", extra_env=env)), daemon=True)
    waiter.start()
    wait_until(lambda: [c for c in desk.engine.list_managed(desk.instance)
                        if c["Labels"].get("ptdesk.queue") == "queued"], timeout=60, message="lab filed")
    desk.engine.remove(held["id"], force=True)  # `docker rm -f`: the waiting ptdesk admits it itself
    waiter.join(timeout=180)
    assert outcome and outcome[0]["status"] == "running" and outcome[0]["gpus"] in ([0], [1])
    python = "/opt/ptdesk/jupyter/bin/python3"
    assert _exec(desk, outcome[0]["id"], f"{python} -c 'import ptdesk_demo; print(ptdesk_demo.V)'", user) == "1.0"


async def test_s_then_queue_in_the_dashboard_files_it_and_its_row_reads_queued(desk: GpuDesk, tmp_path: Path) -> None:
    _stopped_and_taken(desk, tmp_path)
    ws = desk.workstation()
    app = PtdeskApp(ws, watch_events=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, lambda: app.main.table.select_name("g1"), message="g1's row")
            await pilot.press("s")
            await settle(pilot, lambda: isinstance(app.screen, GpusGoneDialog), message="the question")
            await pilot.press("w")  # wait in the queue
            await settle(pilot, lambda: app.main.table.select_name("g1") and app.main.table.selected.status
                         == "queued #1", timeout=60, message="g1's row reads queued #1")
            assert app.main.table.selected.waiting.startswith("needs 1 GPU: 0 free")
    finally:
        ws.close()
    assert {e["name"]: e["status"] for e in desk.json("ls", "--all")}["g1"] == "queued #1"


def test_a_start_does_not_take_a_gpu_the_head_of_the_queue_waits_for(desk: GpuDesk, tmp_path: Path) -> None:
    g1 = desk.new("--name", "g1", "--gpus", "1")
    desk.ok("stop", "g1")
    bob, cy = (_short_hold(person(desk, tmp_path, who)) for who in ("bob", "cy"))
    bob.new("--name", "b0", "--gpus", "0")
    bob.new("--name", "b1", "--gpus", "1")
    cy.json("new", "ssh", "--cpus", "1", "--name", "c-both", "--gpus", "0,1", "--queue")
    bob.ok("rm", "--force", "b1")  # GPU 1 is free of holds, but Cy's request (the head) waits for it
    refused = desk.fails("start", "g1")
    assert "GPU 1 is held by the GPU queue (queued 'c-both' (cy) waits for it)" in refused[0]
    assert "c-both" in desk.fails("start", "g1", "--gpus", "auto")[0]
    assert desk.json("start", "g1", "--queue")["status"] == "queued #2"  # behind Cy, in the one queue
    assert [e["name"] for e in cy.json("queue")["queue"]] == ["c-both", "g1"]
    assert desk.engine.try_inspect(g1["id"]) is None
