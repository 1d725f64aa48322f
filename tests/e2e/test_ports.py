"""Published ports: fixed per experiment, and a port taken at the last moment costs only a retry."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments import launch as launch_module
from ptdesk.core.experiments.spec import make_spec
from ptdesk.core.workstation import Workstation
from tests.support.helpers import run_cli


@pytest.fixture
def desk_env(ptdesk_env: dict[str, str]) -> Iterator[Workstation]:
    ws = Workstation(load_config(ptdesk_env))
    yield ws
    ws.close()


def test_a_port_taken_between_pick_and_start_is_picked_again(
        desk_env: Workstation, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone else binds the picked port before the engine does: ptdesk picks another, and the
    experiment ends up on a port that works, with nothing left of the first try."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    real_pick = launch_module.free_port
    monkeypatch.setattr(launch_module, "free_port", lambda address: next(picks, None) or real_pick(address))
    try:
        experiment = desk_env.launch(make_spec(desk_env, "ssh", name="retry")).experiment
    finally:
        squatter.close()
    assert experiment.access is not None and experiment.access.fields["port"] != taken
    assert engine.published_port(experiment.id, "22/tcp") == ("127.0.0.1", experiment.access.fields["port"])
    mine = engine.list_managed(desk_env.config.instance)
    assert [c["Id"] for c in mine] == [experiment.id]  # the first try's container is gone


def test_auto_gpu_that_finds_none_says_why(ptdesk_env: dict[str, str], engine: Engine) -> None:
    """`--gpus auto` on a machine NVML cannot read still launches, and says it got no GPU and why
    (never a silent CPU run)."""
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a readable GPU")
    except pynvml.NVMLError:
        pass
    code, out, err = run_cli(["new", "ssh", "--name", "autogpu", "--gpus", "auto"], ptdesk_env)
    assert code == 0, err
    warning = next(ln for ln in err.splitlines() if "warning:" in ln and "GPU" in ln)
    assert "No GPU was given" in warning and "NVIDIA" in warning


def test_a_workspace_the_container_user_cannot_write_is_named_at_launch(
        ptdesk_env: dict[str, str], engine: Engine, tmp_path: Path) -> None:
    """The experiment starts (reading may be all that is wanted) but the person is told at once,
    not by a "Permission denied" from inside a notebook later."""
    if os.getuid() != 0:
        pytest.skip("needs root to make a folder another user owns")
    readonly = tmp_path / "readonly-data"
    readonly.mkdir(mode=0o755)
    os.chown(readonly, 0, 0)  # root's, and the container user is not root
    code, _, err = run_cli(["new", "ssh", "--name", "ro", "--workspace", str(readonly)], ptdesk_env)
    assert code == 0, err
    warning = next(line for line in err.splitlines() if "warning:" in line)
    assert str(readonly) in warning and "not writable by uid" in warning

    writable = tmp_path / "project"
    writable.mkdir()
    os.chown(writable, int(load_config(ptdesk_env).uid), -1)
    code, _, err = run_cli(["new", "ssh", "--name", "rw", "--workspace", str(writable), "--gpus", "none",
                            "--cpus", "1"], ptdesk_env)  # --cpus: the default may be more than this box has (said)
    assert code == 0 and "warning:" not in err
