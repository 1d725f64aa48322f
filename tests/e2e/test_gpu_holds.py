"""A stopped experiment keeps its GPUs only for a short hold; started later, it comes back on the
same GPUs if free, else on other GPUs (re-created, keeping what was made inside) or none.

On the GPU test engine (containers with GPU device requests really start), with an NVML scenario
of four idle GPUs and a clock the test moves (ptdesk.core.base.clock) instead of sleeping.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.base import clock
from ptdesk.core.base.models import LABEL_GPUS, LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
from ptdesk.core.engine.locks import boot_id
from ptdesk.core.sharing.recreate import recreate
from ptdesk.errors import PtdeskError
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.gpus_gone import GpusGone as GpusGoneDialog
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import BASE_IMAGE, JUPYTER_IMAGE, SSH_IMAGE, settle
from tests.support.tuihelpers import screen_text
from tests.support.wheels import make_wheel

HOLD = 600.0  # gpu_hold_after_stop = "10m"


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move ptdesk's clock forward (the engine's stop times stay real)."""
    monkeypatch.setattr(clock, "now", lambda: time.time() + seconds)


def _write_config(desk: GpuDesk, text: str) -> None:
    desk.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (desk.home / "config.toml").write_text(text)


def _make_file(desk: GpuDesk, container: str, path: str, text: str) -> None:
    code, out = desk.engine.exec(container, ["sh", "-c", f"echo {text} > {path}"], user="root")
    assert code == 0, out


def _read(desk: GpuDesk, container: str, path: str) -> str:
    code, out = desk.engine.exec(container, ["cat", path])
    assert code == 0, out
    return out.decode().strip()


def test_a_stopped_experiment_holds_its_gpus_for_the_hold_then_lets_go(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(gpu_desk, 'gpu_hold_after_stop = "10m"\n')
    g1 = gpu_desk.new("--name", "g1", "--gpus", "0,2")
    gpu_desk.ok("stop", "g1")
    # Within the hold: the hint no longer says "stop that experiment first" (it is stopped).
    refused = gpu_desk.fails("new", "ssh", "--name", "g2", "--cpus", "1", "--gpus", "0")
    assert "GPU 0 is held by experiment 'g1'" in refused[0] and "stopped; it keeps its GPUs until" in refused[0]
    assert "stop that experiment first" not in " ".join(refused)
    assert "ptdesk rm g1" in refused[1]
    _later(monkeypatch, HOLD + 1)
    g2 = gpu_desk.new("--name", "g2", "--gpus", "0")  # the hold is over: GPU 0 is free for others
    assert g2["gpus"] == [0] and gpu_desk.device_ids(g2["id"]) == ["0"]
    assert gpu_desk.engine.try_inspect(g1["id"]) is not None  # g1 itself is kept, only its GPUs let go


def test_start_after_the_hold_offers_the_choices_then_moves_to_other_gpus_keeping_what_was_made(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(gpu_desk, 'gpu_hold_after_stop = "10m"\n')
    g1 = gpu_desk.new("--name", "g1", "--gpus", "0,2")
    _make_file(gpu_desk, g1["id"], "/opt/made-inside.txt", "kept")
    gpu_desk.ok("collab", "add", "bob")
    gpu_desk.ok("grant", "bob", "g1")
    granted = _read(gpu_desk, g1["id"], "/etc/ptdesk/authorized_keys/bob")
    gpu_desk.ok("stop", "g1")
    _later(monkeypatch, HOLD + 1)
    gpu_desk.new("--name", "g2", "--gpus", "0")

    refused = gpu_desk.fails("start", "g1")
    assert "let go of GPUs 0, 2 after the hold" in refused[0] and "GPU 0 is held by experiment 'g2'" in refused[0]
    assert "--gpus none" in refused[1] and "--queue" in refused[1]
    # It had two GPUs: the first choice offered gets it two (was `--gpus auto`, which is one GPU).
    assert "ptdesk start g1 --gpus any:2" in refused[1] and "--gpus auto" not in refused[1], refused
    assert not gpu_desk.engine.is_running(g1["id"])  # nothing changed
    assert gpu_desk.fails("start", "g1", "--gpus", "0,1")[0].startswith("ptdesk: GPU 0 is held by experiment 'g2'")

    moved = gpu_desk.json("start", "g1", "--gpus", "auto")
    assert moved["status"] == "running" and moved["gpus"] == [1]
    assert moved["id"] != g1["id"] and gpu_desk.engine.try_inspect(g1["id"]) is None
    assert gpu_desk.device_ids(moved["id"]) == ["1"] and gpu_desk.gpu_env(moved["id"]) == "1"
    assert _read(gpu_desk, moved["id"], "/opt/made-inside.txt") == "kept"
    assert _read(gpu_desk, moved["id"], "/etc/ptdesk/authorized_keys/bob") == granted  # bob's grant came along
    assert gpu_desk.engine.exec(moved["id"], ["id", "bob"])[0] == 0  # and his account
    # Same name, port and host key: `ptdesk start` proved the pinned key lets the owner in again.
    assert moved["name"] == "g1" and moved["ssh"]["port"] == g1["ssh"]["port"]
    assert moved["image"] == g1["image"] and not moved.get("unverified") and not moved.get("orphan")
    assert {e["name"] for e in gpu_desk.json("ls", "--all")} == {"g1", "g2"}  # no twin left behind


def test_start_within_the_hold_gets_the_same_gpus_and_start_without_a_gpu_keeps_the_experiment(
        gpu_desk: GpuDesk) -> None:
    g1 = gpu_desk.new("--name", "g1", "--gpus", "3")
    gpu_desk.ok("stop", "g1")
    again = gpu_desk.json("start", "g1")
    assert again["id"] == g1["id"] and again["gpus"] == [3]
    gpu_desk.ok("stop", "g1")
    # auto is met by the GPU it has, free again (GPU 0 would be the least loaded): nothing re-created.
    assert gpu_desk.json("start", "g1", "--gpus", "auto")["id"] == g1["id"]
    gpu_desk.ok("stop", "g1")
    said = gpu_desk.ok("start", "g1", "--gpus", "none")
    assert said.startswith("g1 is running without a GPU (it had GPU 3: re-created"), said  # was: "g1 is running."
    cpu = next(e for e in gpu_desk.json("ls") if e["name"] == "g1")
    assert cpu["gpus"] == [] and gpu_desk.device_ids(cpu["id"]) is None and cpu["status"] == "running"
    assert gpu_desk.fails("start", "g1", "--gpus", "any:0")[0].startswith("ptdesk: ")


def test_start_within_the_hold_gets_its_gpu_back_though_a_request_waits_in_the_queue(
        gpu_desk: GpuDesk, tmp_path: Path) -> None:
    """The hold is for a quick restart: the queue does not claim a stopped experiment's GPUs while
    it lasts (admission would not give them either), so its owner's start is not refused for it."""
    from e2e.test_gpu_queue import person

    from tests.support.nvml_scenarios import idle

    gpu_desk.install(idle(1))
    g1 = gpu_desk.new("--name", "g1", "--gpus", "0")
    gpu_desk.ok("stop", "g1")
    ann = person(gpu_desk, tmp_path, "ann")
    queued = ann.json("new", "ssh", "--cpus", "1", "--name", "waits", "--gpus", "auto", "--queue")
    assert queued["status"] == "queued #1"
    again = gpu_desk.json("start", "g1")
    assert again["id"] == g1["id"] and again["gpus"] == [0] and again["status"] == "running"
    assert "GPU 0 held by 'g1'" in ann.json("queue")["queue"][0]["reason"]


def test_moving_a_jupyter_experiment_keeps_a_pip_installed_package_and_its_token(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_desk.gpu.ensure_image(JUPYTER_IMAGE)
    _write_config(gpu_desk, 'gpu_hold_after_stop = "1m"\n')
    env = {"PTDESK_JUPYTER_IMAGE": JUPYTER_IMAGE}
    lab = gpu_desk.json("new", "jupyter", "--name", "lab", "--cpus", "1", "--gpus", "2", extra_env=env)
    config = load_config(gpu_desk.env)
    wheel = make_wheel(config.workspaces / "lab")  # the container's /workspace
    user = f"{config.uid}:{config.gid}"
    # Into the image's environment (the container's writable layer): this kind's home is a tmpfs,
    # which no stop keeps, moved or not.
    code, out = gpu_desk.engine.exec(lab["id"], ["cp", f"/workspace/{wheel.name}", "/tmp/"], user=user)
    assert code == 0, out
    pip = "/opt/ptdesk/jupyter/bin/pip"  # ptdesk's execs run with the system folders as PATH
    code, out = gpu_desk.engine.exec(lab["id"], [pip, "install", "--no-index", "--no-deps", "--no-cache-dir",
                                                 f"/tmp/{wheel.name}"], user="root")
    assert code == 0, out.decode(errors="replace")
    assert _imports_demo(gpu_desk, lab["id"], user)
    gpu_desk.ok("stop", "lab")
    _later(monkeypatch, 61)
    gpu_desk.json("new", "ssh", "--name", "other", "--cpus", "1", "--gpus", "2")
    # Started on other GPUs: `start` waits until Jupyter answers with the token ptdesk holds (the
    # sealed token file travelled by archive, never through an image).
    moved = gpu_desk.json("start", "lab", "--gpus", "any:1", extra_env=env)
    assert moved["gpus"] == [0] and moved["id"] != lab["id"]
    assert _imports_demo(gpu_desk, moved["id"], user)
    assert gpu_desk.engine.client.images.list(filters={"reference": "*lab*"}) == []  # no commit was made


def _imports_demo(desk: GpuDesk, container: str, user: str) -> bool:
    python = "/opt/ptdesk/jupyter/bin/python3"  # the environment's own: execs run with the system PATH
    code, out = desk.engine.exec(container, [python, "-c", "import ptdesk_demo; print(ptdesk_demo.V)"], user=user)
    assert code == 0 and out.decode().strip() == "1.0", out
    return True


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
async def test_s_on_a_stopped_experiment_whose_gpus_were_taken_asks_then_moves_it(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    _write_config(gpu_desk, 'gpu_hold_after_stop = "10m"\n')
    g1 = gpu_desk.new("--name", "g1", "--gpus", "0")
    gpu_desk.ok("stop", "g1")
    _later(monkeypatch, HOLD + 1)
    gpu_desk.new("--name", "g2", "--gpus", "0")
    ws = gpu_desk.workstation()
    app = PtdeskApp(ws, watch_events=False)
    try:
        async with app.run_test(size=size) as pilot:  # the dialog fits the smallest terminal too
            await settle(pilot, lambda: app.main.table.selected is not None, message="the rows")
            for _ in range(2):
                if app.main.table.selected.name == "g1":
                    break
                await pilot.press("down")
            assert app.main.table.selected.name == "g1"
            await pilot.press("s")
            await settle(pilot, lambda: isinstance(app.screen, GpusGoneDialog), message="the question")
            assert "let go of GPU 0" in app.screen.why and "'g2'" in app.screen.why
            await pilot.pause()
            shown = screen_text(app)  # every choice drawn, at this size too
            assert all(label in shown for label in ("Other GPUs (a)", "No GPU (n)", "Queue (w)", "Cancel (c)")), shown
            await pilot.press("a")  # other free GPUs
            await settle(pilot, lambda: gpu_desk.json("ls", "--all") and
                         {e["name"]: e for e in gpu_desk.json("ls", "--all")}["g1"]["status"] == "running",
                         timeout=90, message="g1 running on other GPUs")
    finally:
        ws.close()
    moved = {e["name"]: e for e in gpu_desk.json("ls", "--all")}["g1"]
    assert moved["gpus"] == [1] and moved["id"] != g1["id"]


def test_a_container_this_home_did_not_seal_is_not_re_created_and_nothing_is_left(gpu_desk: GpuDesk) -> None:
    gpu_desk.gpu.ensure_image(BASE_IMAGE)
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: gpu_desk.instance, LABEL_KIND: "ssh", LABEL_OWNER: "alice",
              LABEL_NAME: "forged", LABEL_GPUS: "0", "ptdesk.seal": "0" * 64}
    forged = gpu_desk.engine.create(name=f"ptdesk-{gpu_desk.instance}-forged", image=BASE_IMAGE, labels=labels,
                                    command=["sleep", "60"], host_config={})
    before = gpu_desk.engine.inspect(forged)
    ws = gpu_desk.workstation()
    try:
        with pytest.raises(PtdeskError, match="was not made by this ptdesk home"):
            recreate(ws, forged, (1,))
    finally:
        ws.close()
    listed = gpu_desk.engine.list_managed(gpu_desk.instance)
    assert [c["Id"] for c in listed] == [forged]  # no half-made twin
    after = gpu_desk.engine.inspect(forged)
    assert after["Name"] == before["Name"] and after["HostConfig"].get("DeviceRequests") is None


def test_an_experiment_stopped_behind_ptdesks_back_lets_go_after_the_hold_too(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its record still says running (no watcher saw it stop): the engine's stop time decides."""
    g1 = gpu_desk.new("--name", "g1", "--gpus", "1")
    gpu_desk.engine.stop(g1["id"], timeout=2)  # `docker stop`, or a crash: ptdesk was not told
    assert "GPU 1 is held by experiment 'g1'" in gpu_desk.fails("new", "ssh", "--name", "g2", "--gpus", "1")[0]
    _later(monkeypatch, HOLD + 1)
    assert gpu_desk.new("--name", "g2", "--gpus", "1")["gpus"] == [1]


def test_a_re_creation_cut_short_is_undone_by_the_next_command(gpu_desk: GpuDesk) -> None:
    """The state a killed `start --gpus` leaves between its renames: the old container renamed
    aside, the new one half-filled. The next command's reconcile gives the name back and removes
    the twin; the experiment starts as before."""
    g1 = gpu_desk.new("--name", "g1", "--gpus", "0")
    gpu_desk.ok("stop", "g1")
    name = gpu_desk.engine.inspect(g1["id"])["Name"].lstrip("/")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the re-creator was killed
    tag = f"{gone.pid}-{boot_id()[:8]}"
    gpu_desk.engine.rename(g1["id"], f"{name}.replaced-{tag}-abcdef")
    labels = gpu_desk.engine.inspect(g1["id"])["Config"]["Labels"]
    twin = gpu_desk.engine.create(name=f"{name}.next-{tag}-abcdef", image=SSH_IMAGE, labels=labels,
                                  command=["true"], host_config={})
    live = subprocess.Popen(["sleep", "60"])  # a re-creation still running is left alone
    try:
        busy = gpu_desk.engine.create(name=f"{name}x.next-{live.pid}-{boot_id()[:8]}-abcdef", image=SSH_IMAGE,
                                      labels={**labels, "ptdesk.name": "g1x"}, command=["true"], host_config={})
        gpu_desk.ok("ls", "--all")
        assert gpu_desk.engine.inspect(g1["id"])["Name"] == f"/{name}"
        assert gpu_desk.engine.try_inspect(twin) is None and gpu_desk.engine.try_inspect(busy) is not None
    finally:
        live.kill()
        live.wait()
    assert gpu_desk.json("start", "g1")["id"] == g1["id"]
