"""A cull people accept: an idle experiment is warned first (its person's route and their open
terminal — a real OpenSSH session — with the deadline), `ptdesk keep` extends it up to keep_max,
the deadline stops it; an experiment busy on a (fixture) GPU is not culled while an idle one is.
The clock is ptdesk.core.base.clock, moved by the test: nothing sleeps."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pynvml
import pytest

from ptdesk.config import load_config
from ptdesk.core.base import clock
from ptdesk.core.experiments.culling import GpuWindow
from ptdesk.core.workstation import Workstation
from tests.support.helpers import run_cli, wait_until
from tests.support.lifecycle_support import hold_gpus
from tests.support.nvml_scenarios import healthy
from tests.support.receivers import webhook_server

POLICY = '[cull]\nidle = "1m"\nwarn = "15m"\nkeep_max = "2h"\ngpu_window = "30m"\ngpu_below = 5\n'


@pytest.fixture
def desk(ptdesk_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    home = Path(ptdesk_env["PTDESK_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(POLICY)
    moment = [time.time()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    ws = Workstation(load_config(ptdesk_env))
    yield ws, moment
    ws.close()


def _open_terminal(ws: Workstation, name: str) -> tuple[subprocess.Popen[bytes], list[bytes]]:
    """The owner's real OpenSSH session with a terminal, left open (over lunch)."""
    argv = ws.ssh_argv(name, ["sh", "-c", "echo READY; exec sleep 600"], options=["-tt", "-o", "BatchMode=yes"])
    session = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seen: list[bytes] = []
    threading.Thread(target=lambda: seen.extend(iter(lambda: session.stdout.read1(4096), b"")), daemon=True).start()
    wait_until(lambda: b"READY" in b"".join(seen), timeout=30, message="the session")
    return session, seen


def test_the_cull_warns_an_open_terminal_keep_extends_and_the_deadline_stops(
        desk, ptdesk_env: dict[str, str]) -> None:
    ws, moment = desk
    with webhook_server() as (url, posts):
        assert run_cli(["notify", "add", "hook", "--events", "cull"], ptdesk_env, input=url + "\n")[0] == 0
        assert run_cli(["new", "ssh", "--name", "lunch", "--gpus", "none"], ptdesk_env)[0] == 0
        session, seen = _open_terminal(ws, "lunch")
        try:
            assert [p.action for p, _ in ws.cull_round(GpuWindow())] == ["-"]  # just opened: not idle
            moment[0] += 120  # two minutes without input on the terminal
            [(warned, said)] = ws.cull_round(GpuWindow())
            assert warned.action == "warn" and warned.deadline == moment[0] + 900 and said is not None
            assert posts[0]["title"].startswith("ptdesk: 'lunch' will be stopped at")
            assert "ptdesk keep lunch" in posts[0]["message"]
            wait_until(lambda: b"will be stopped at" in b"".join(seen), timeout=15,
                       message="the warning in the terminal")
            assert b"Broadcast message from ptdesk" in b"".join(seen)
        finally:
            session.kill()
            session.wait()
        code, out, _ = run_cli(["cull", "--dry-run"], ptdesk_env)
        at = time.strftime("%H:%M", time.localtime(warned.deadline))
        assert code == 0 and "warned" in out and f"stops {at}" in out

        code, _, err = run_cli(["keep", "lunch", "3h"], ptdesk_env)
        assert code == 2 and "at most 2h" in err
        assert run_cli(["keep", "lunch", "30m"], ptdesk_env)[0] == 0
        assert [p.action for p, _ in ws.cull_round(GpuWindow())] == ["kept"]
        moment[0] += 31 * 60  # the keep ended, still idle: warned again, with a new deadline
        [(again, _)] = ws.cull_round(GpuWindow())
        assert again.action == "warn" and len(posts) == 2
        moment[0] += 15 * 60  # the deadline: stopped, disk kept
        [(stopped, _)] = ws.cull_round(GpuWindow())
        assert stopped.action == "stop"
    assert ws.experiment("lunch").status == "exited"


def test_an_experiment_busy_on_a_gpu_is_not_culled_while_an_idle_one_is(
        desk, ptdesk_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, moment = desk
    scenario = healthy(gpus=2)
    scenario.gpus[0].util, scenario.gpus[1].util = 80, 1  # GPU 0 trains, GPU 1 sits idle
    for name, fn in scenario.functions().items():
        monkeypatch.setattr(pynvml, name, fn)
    for name, gpu in (("busy", 0), ("idle", 1)):
        assert run_cli(["new", "ssh", "--name", name, "--gpus", "none"], ptdesk_env)[0] == 0
        hold_gpus(Path(ptdesk_env["PTDESK_HOME"]), name, [gpu])  # no GPU here: recorded as a launch would
    window = GpuWindow()
    window.add(ws.gpu_snapshot(attribute=False))
    moment[0] += 20 * 60
    assert {p.name: p.action for p in ws.cull_plan(window)} == {"busy": "-", "idle": "-"}  # window not seen whole
    moment[0] += 11 * 60
    window.add(ws.gpu_snapshot(attribute=False))
    plans = {p.name: p for p in ws.cull_plan(window)}
    assert plans["idle"].action == "warn" and plans["busy"].action == "-"
    assert "a GPU at 5 % or more" in plans["busy"].detail
