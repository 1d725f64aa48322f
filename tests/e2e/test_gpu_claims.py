"""No claim that lies, and requests people make: on the GPU test engine with an NVML scenario.

`ptdesk gpus` says per GPU who holds it (running, or stopped within its hold), whether it works
while held, and the use outside every ptdesk experiment (named by host user and pid); `auto`
does not give a GPU with such use above the threshold, and says so."""

from __future__ import annotations

import getpass
import os

import pytest

import ptdesk.tui.live as live_module
from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.base.names import current_user
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from tests.support.gpu_engine import GpuDesk, nvml_scenarios
from tests.support.helpers import settle

GiB = 1024**3


def test_gpus_shows_holders_busy_or_idle_and_unclaimed_use_which_auto_avoids(gpu_desk: GpuDesk) -> None:
    gpu_desk.new("--name", "train", "--gpus", "3")
    gpu_desk.new("--name", "g1", "--gpus", "0,2")
    gpu_desk.ok("stop", "g1")
    box = gpu_desk.scenario
    box.gpus[3].util = 87  # train works (no process of it is visible: the panel once read "idle")
    box.gpus[1].used = 30 * GiB  # someone's host process (this test's own pid: a real host user)
    box.gpus[1].compute = [nvml_scenarios.FakeProc(os.getpid(), 30 * GiB)]

    gpus = {g["index"]: g for g in gpu_desk.json("gpus")["gpus"]}
    me = current_user()
    assert gpus[3]["held_by"] == {"experiment": "train", "owner": me, "state": "running", "until": None, "busy": True}
    held = gpus[0]["held_by"]
    assert held["experiment"] == "g1" and held["state"] == "stopped" and held["busy"] is False and held["until"]
    assert gpus[2]["held_by"]["experiment"] == "g1" and gpus[1]["held_by"] is None
    unclaimed = gpus[1]["unclaimed"]
    assert unclaimed["memory"] == 30 * GiB and unclaimed["blocks_allocation"] is True
    assert [(p["pid"], p["host_user"]) for p in unclaimed["processes"]] == [(os.getpid(), getpass.getuser())]
    assert gpus[1]["reserved"] is None  # the field reservations fill

    text = gpu_desk.ok("gpus")
    assert f"held: train ({me}), running, busy" in text and f"held: g1 ({me}), stopped, holds until" in text
    assert f"GPU 1: unclaimed use, outside every ptdesk experiment: 30.0 GiB by pid {os.getpid()} " \
           f"({getpass.getuser()}); auto, any:N and the queue do not give it." in text

    refused = gpu_desk.fails("new", "ssh", "--name", "wants", "--cpus", "1", "--gpus", "auto")
    assert "No free GPU" in refused[0] and f"unclaimed use: 30.0 GiB by pid {os.getpid()}" in refused[0]
    (gpu_desk.home / "config.toml").write_text('unclaimed_gpu_memory = "40G"\n')
    assert gpu_desk.new("--name", "wants", "--gpus", "auto")["gpus"] == [1]  # under the threshold now


def test_any_n_with_memory_gets_that_many_gpus_and_bad_requests_create_nothing(gpu_desk: GpuDesk) -> None:
    gpu_desk.scenario.gpus[0].used = 70 * GiB  # 10 GiB free
    code, _, err = gpu_desk.run("new", "ssh", "--name", "two", "--cpus", "1", "--gpus", "any:2", "--gpu-memory", "20G")
    assert code == 0, err
    # Which and why: GPU 0 has only 10 GiB free; 1 and 2 are the least loaded of the rest.
    assert "GPUs chosen: the least loaded of the free GPUs (GPU 1: 0% busy, 80 GiB free, GPU 2: 0% busy" in err
    two = {e["name"]: e for e in gpu_desk.json("ls", "--all")}["two"]
    assert two["gpus"] == [1, 2] and gpu_desk.device_ids(two["id"]) == ["1", "2"]
    for args, says in ((("--gpus", "any:0"), "asks for no GPU"),
                       (("--gpus", "any:5"), "any:5 asks for more GPUs than this machine has (4 GPUs)"),
                       (("--gpus", "any:1", "--gpu-memory", "20"), "is not an amount of GPU memory"),
                       (("--gpus", "any:1", "--gpu-memory", "100G"), "No GPU here has 100 GiB of memory")):
        code, _, err = gpu_desk.run("new", "ssh", "--name", "bad", "--cpus", "1", *args)
        lines = [ln for ln in err.strip().splitlines() if not ln.endswith("...")]
        assert code == 2 and says in lines[0] and len(lines) <= 2, err
    names = {c["Labels"].get("ptdesk.name") for c in gpu_desk.engine.list_managed(gpu_desk.instance)}
    assert names == {"two"} and not (gpu_desk.home / "workspaces" / "bad").exists()
    refused = gpu_desk.fails("new", "ssh", "--name", "more", "--gpus", "any:2", "--gpu-memory", "20G")
    assert "Only 1 of the 2 GPUs any:2 asks for is free" in refused[0]
    assert "0 (10 GiB free, 20 GiB asked for)" in refused[0] and "--queue" in refused[1]


async def test_the_gpu_panel_says_who_holds_each_gpu_and_names_unclaimed_use(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_desk.new("--name", "train", "--gpus", "3")
    gpu_desk.new("--name", "g1", "--gpus", "0")
    gpu_desk.ok("stop", "g1")
    box = gpu_desk.scenario
    box.gpus[3].util = 87  # no process of train is visible: the panel once read "idle" here
    box.gpus[1].used = 30 * GiB
    box.gpus[1].compute = [nvml_scenarios.FakeProc(os.getpid(), 30 * GiB)]  # once read only "root"
    monkeypatch.setattr(live_module, "GPU_INTERVAL", 0.05)
    ws = gpu_desk.workstation()
    app = PtdeskApp(ws, watch_events=False)
    try:
        async with app.run_test(size=(200, 48)) as pilot:

            def users(index: int) -> str:
                cells = list(app.query(".gpu-users"))
                return str(cells[index].render()) if len(cells) == 4 else ""

            await settle(pilot, lambda: "train" in users(3), message="GPU 3 shown held by train")
            me = current_user()
            assert users(3) == f"train ({me}) busy"
            assert users(0).startswith(f"g1 ({me}) stopped, held to")
            assert users(1) == f"unclaimed 30.0 GiB by pid {os.getpid()} ({getpass.getuser()})"
            assert users(2) == "idle"
    finally:
        ws.close()


def test_with_no_gpu_to_claim_the_engine_is_not_asked_for_reservations(ws: Workstation, engine: Engine) -> None:
    """`ptdesk gpus --watch` and the dashboard ask for the claims every second or two: on a box without
    a driver (or without GPUs) no reservation can name a GPU, so the engine is not connected for it."""
    no_driver = GpuSnapshot(available=False, reason="No NVIDIA driver is installed on this machine.", driver=None)
    no_gpus = GpuSnapshot(available=True, reason=None, driver="550.54")
    assert engine.version()  # an engine to ask is there: not asking it is the behaviour under test
    assert ws.gpu_claims(no_driver) == {} and ws.gpu_claims(no_gpus) == {}
    assert not ws.engine_connected
