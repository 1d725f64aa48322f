"""Snapshots of the main screen and the new-experiment form (pytest-textual-snapshot).

Deterministic on purpose: NVML scenarios at the pynvml boundary, a fixed clock and host name, a
fixed instance name, CPU/memory read from a fixed cgroup tree, containers that print fixed lines.
The containers and the GPU attribution are real. Update with: pytest tests/tui --snapshot-update
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.widgets import Input

import ptdesk.tui.live as live_module
from ptdesk.config import load_config
from ptdesk.core.base.models import Access, Experiment, Limits
from ptdesk.core.host.cgroups import StatsSampler
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.collaborators import Collaborators
from ptdesk.tui.screens.details import Details
from ptdesk.tui.screens.help import Help
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.widgets.log_pane import LogPane
from tests.support.helpers import cgroup_tree, remove_instance_containers
from tests.support.tuihelpers import nvml_scenarios, settle

SIZE = (150, 40)
HOST_KEY = "SHA256:6cFq1a7KxJw0Vd2mYy3bq8tXh5zZr4nG9oPpLsUeQiE"
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
SSH_LINE = ("ssh -i /home/alice/.local/share/ptdesk/keys/alice-ssh-1/id_ed25519 -p 49153 -o IdentitiesOnly=yes "
            "-o UserKnownHostsFile=/home/alice/.local/share/ptdesk/known_hosts/alice-ssh-1 "
            "-o StrictHostKeyChecking=yes -o HostKeyAlias=ptdesk-alice-ssh-1 ptdesk@127.0.0.1")
BTIME = 1_700_000_000
INSTANCE = "snapshot"
LOG = ["epoch 1/3 loss 0.912", "epoch 2/3 loss 0.534", "epoch 3/3 loss 0.401", "saved checkpoint ckpt-3.pt"]


@pytest.fixture
def snapshot_env(ptdesk_env, engine, monkeypatch) -> Iterator[dict[str, str]]:
    """This test's home with a fixed instance name (cleaned before and after) and 1-CPU defaults."""
    env = {**ptdesk_env, "PTDESK_INSTANCE": INSTANCE}
    home = env["PTDESK_HOME"]
    from pathlib import Path

    Path(home).mkdir(parents=True, exist_ok=True)
    (Path(home) / "config.toml").write_text("[limits]\ncpus = 1\nmemory = \"8g\"\n")
    monkeypatch.setenv("SUDO_USER", "alice")
    # Deterministic pictures: one GPU sample, stats settle after two samples.
    monkeypatch.setattr(live_module, "GPU_INTERVAL", 3600.0)
    monkeypatch.setattr(live_module, "STATS_INTERVAL", 0.2)
    remove_instance_containers(engine, INSTANCE)
    yield env
    remove_instance_containers(engine, INSTANCE)


def _start(engine, name: str, owner: str, kind: str, gpus: str) -> str:
    from ptdesk.core.base.models import LABEL_GPUS, LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
    from tests.support.helpers import BASE_IMAGE

    script = "; ".join(f"echo '{line}'" for line in LOG) + "; sleep 3600"
    cid = engine.create(name=f"ptdesk-{INSTANCE}-{name}", image=BASE_IMAGE, command=["sh", "-c", script],
                        labels={LABEL_MANAGED: "1", LABEL_INSTANCE: INSTANCE, LABEL_KIND: kind,
                                LABEL_OWNER: owner, LABEL_NAME: name, LABEL_GPUS: gpus},
                        host_config={"init": True})
    engine.start(cid)
    return cid


def _app(env, tmp_path, cids: dict[str, int]) -> PtdeskApp:
    tree = {cid: {"cpu_ns": 5_000_000_000, "memory": (i + 1) * 700 * 2**20, "inactive": 50 * 2**20,
                  "limit": 8 * 2**30, "pid": 4000 + i, "start_ticks": 100 * (1000 + i * 600)}
            for i, cid in enumerate(cids)}
    cgroup, proc = cgroup_tree(tmp_path / "fixture", tree, BTIME)
    clock = lambda: BTIME + 1000 + 3723.0  # noqa: E731 - the first container has been up 1h02m
    ws = Workstation(load_config(env))
    ws.stats_sampler = StatsSampler(root=cgroup, proc=proc)  # the Workstation's sampler, on the fixed tree
    return PtdeskApp(ws, clock=clock, hostname="workstation")


def _ready(app: PtdeskApp, rows: int):
    async def wait(pilot) -> None:
        await settle(pilot, lambda: app.main.listed and app.main.gpu_samples and len(app.main.experiments) == rows)
        await settle(pilot, lambda: all(s.cpu_percent is not None for s in app.main.table.stats.values())
                     and len(app.main.table.stats) == rows, message="two stats samples")
        if rows:
            await settle(pilot, lambda: len(app.query_one(LogPane).lines) == len(LOG), message="the log")
        await pilot.pause()
    return wait


def test_main_screen(snap_compare, snapshot_env, engine, nvml, tmp_path):
    notebook = _start(engine, "alice-notebook", "alice", "jupyter", "0")
    train = _start(engine, "bob-train", "bob", "ssh", "1")
    scenario = nvml_scenarios.healthy(pids=(engine.top_pids(notebook)[0],), gpus=2)
    scenario.gpus[1].compute = [nvml_scenarios.FakeProc(engine.top_pids(train)[0], 30 * 2**30)]
    nvml(scenario)
    app = _app(snapshot_env, tmp_path, {notebook: 0, train: 1})
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready(app, 2))


def test_main_screen_mig_and_lost_gpu(snap_compare, snapshot_env, nvml, tmp_path):
    scenario = nvml_scenarios.mig()
    scenario.gpus.append(nvml_scenarios.one_lost().gpus[2])
    scenario.gpus[2].fails["nvmlDeviceGetTemperature"] = __import__("pynvml").NVML_ERROR_GPU_IS_LOST
    for gpu in scenario.gpus:
        for inst in gpu.mig or []:
            if inst:
                inst.compute = [nvml_scenarios.FakeProc(999_999_2, 512 * 2**20)]
    nvml(scenario)
    app = _app(snapshot_env, tmp_path, {})
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready(app, 0))


def test_no_gpu_and_new_experiment_form(snap_compare, snapshot_env, nvml, tmp_path):
    nvml(nvml_scenarios.no_driver())
    app = _app(snapshot_env, tmp_path, {})

    async def open_form(pilot) -> None:
        await _ready(app, 0)(pilot)
        await pilot.press("n")
        form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
        await settle(pilot, lambda: form.query_one("#name").value == "alice-jupyter-1", message="the name")
        _steady_cursor(form)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_form)


@SIZES
def test_main_screen_sizes(snap_compare, snapshot_env, engine, nvml, tmp_path, size):
    notebook = _start(engine, "alice-notebook", "alice", "jupyter", "0")
    train = _start(engine, "bob-train", "bob", "ssh", "1")
    scenario = nvml_scenarios.healthy(pids=(engine.top_pids(notebook)[0],), gpus=2)
    scenario.gpus[1].compute = [nvml_scenarios.FakeProc(engine.top_pids(train)[0], 30 * 2**30)]
    nvml(scenario)
    app = _app(snapshot_env, tmp_path, {notebook: 0, train: 1})
    assert snap_compare(app, terminal_size=size, run_before=_ready(app, 2))


def _steady_cursor(screen) -> None:
    """A blinking cursor is drawn or not depending on when the picture is taken: keep it on."""
    for field in screen.query(Input):
        field.cursor_blink = False


def _over_empty_dashboard(app: PtdeskApp, keys: tuple[str, ...], opened: type, push=None):
    async def run(pilot) -> None:
        await _ready(app, 0)(pilot)
        if push is not None:
            app.push_screen(push)
        await pilot.press(*keys)
        screen = await settle(pilot, lambda: isinstance(app.screen, opened) and app.screen)
        if isinstance(screen, NewExperiment):
            await settle(pilot, lambda: screen.query_one("#name").value == "alice-jupyter-1", message="the name")
            _steady_cursor(screen)
        if isinstance(screen, Collaborators):
            await settle(pilot, lambda: "No collaborators" in str(screen.query_one("#collab-note").render()))
        await pilot.pause()
    return run


@SIZES
def test_form_sizes(snap_compare, snapshot_env, nvml, tmp_path, size):
    nvml(nvml_scenarios.no_driver())
    app = _app(snapshot_env, tmp_path, {})
    assert snap_compare(app, terminal_size=size, run_before=_over_empty_dashboard(app, ("n",), NewExperiment))


@SIZES
def test_details_sizes(snap_compare, snapshot_env, nvml, tmp_path, size):
    nvml(nvml_scenarios.no_driver())
    experiment = Experiment(name="alice-ssh-1", id="0123456789abcdef", kind="ssh", owner="alice",
                            image="ptdesk/ssh:latest", status="running", gpus=(0,), created=0.0,
                            workspace="/home/alice/ptdesk/alice-ssh-1", limits=Limits("16g", 2.0, 4096, "8g"),
                            access=Access(SSH_LINE, (("Connect", SSH_LINE), ("Host", "127.0.0.1:49153"),
                                                     ("Host key", HOST_KEY))))
    app = _app(snapshot_env, tmp_path, {})
    run = _over_empty_dashboard(app, (), Details, Details(experiment))
    assert snap_compare(app, terminal_size=size, run_before=run)


@SIZES
def test_help_sizes(snap_compare, snapshot_env, nvml, tmp_path, size):
    nvml(nvml_scenarios.no_driver())
    app = _app(snapshot_env, tmp_path, {})
    assert snap_compare(app, terminal_size=size, run_before=_over_empty_dashboard(app, ("question_mark",), Help))


@SIZES
def test_collaborators_sizes(snap_compare, snapshot_env, nvml, tmp_path, size):
    nvml(nvml_scenarios.no_driver())
    app = _app(snapshot_env, tmp_path, {})
    assert snap_compare(app, terminal_size=size, run_before=_over_empty_dashboard(app, ("k",), Collaborators))
