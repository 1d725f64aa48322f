"""A launch interrupted at any step leaves nothing behind: no container, no `launching` record, no
secrets, no default workspace folder — whatever step the interruption (Ctrl+C, a crash of the
caller) hits. Faults are injected through the launch's own seams: its progress callback (called as
each step begins) and the step that creates the container.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ptdesk.core.engine.client import Engine
from ptdesk.core.environment import drift
from ptdesk.core.experiments import launch as launcher
from ptdesk.core.workstation import Workstation
from ptdesk.tui.errors import describe
from tests.e2e.conftest import instance_containers

STEPS = ("Checking the image", "Reserving name and GPUs", "Generating keys and secrets", "Creating the container",
         "Placing secrets", "Starting", "Waiting until the service lets you in")


class Interrupted(KeyboardInterrupt):
    """What Ctrl+C raises in the launcher, at a known place."""


def fail_at(step: str) -> Callable[[str], None]:
    def progress(current: str) -> None:
        if current == step:
            raise Interrupted()
    return progress


def assert_nothing_left(ws: Workstation, engine: Engine, name: str) -> None:
    assert instance_containers(engine, ws.config.instance) == []
    assert ws.store.experiment(name) is None
    assert not (ws.config.home / "experiments" / name).exists()
    assert not Path(ws.config.workspaces / name).exists()


@pytest.mark.parametrize("step", STEPS)
def test_a_launch_interrupted_at_each_step_leaves_nothing(ws: Workstation, engine: Engine, step: str) -> None:
    spec = ws.make_spec("ssh", name="faulty")
    with pytest.raises(Interrupted):
        ws.launch(spec, fail_at(step))
    assert_nothing_left(ws, engine, "faulty")
    # The name is free again for the next try.
    assert ws.launch(ws.make_spec("ssh", name="faulty")).experiment.name == "faulty"


def test_an_interruption_right_after_the_container_is_created_rolls_it_back(
        ws: Workstation, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window the old rollback missed: the engine made the container, the record does not hold
    its id yet (seen as a `Created` container and a `launching` record left by a Ctrl+C)."""
    create = launcher._create

    def created_then_interrupted(*args: object, **kwargs: object) -> str:
        create(*args, **kwargs)  # type: ignore[arg-type]
        raise Interrupted()

    monkeypatch.setattr(launcher, "_create", created_then_interrupted)
    with pytest.raises(Interrupted):
        ws.launch(ws.make_spec("ssh", name="faulty"))
    # Even the id the engine returned was lost: the container must still not outlive the launch.
    assert instance_containers(engine, ws.config.instance) == []
    assert ws.store.experiment("faulty") is None


def test_an_interruption_after_the_record_holds_the_container_rolls_it_back(
        ws: Workstation, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    at_launch = drift.at_launch

    def recorded_then_interrupted(*args: object, **kwargs: object) -> dict:
        at_launch(*args, **kwargs)  # type: ignore[arg-type]
        raise Interrupted()

    monkeypatch.setattr(drift, "at_launch", recorded_then_interrupted)
    with pytest.raises(Interrupted):
        ws.launch(ws.make_spec("ssh", name="faulty"))
    assert_nothing_left(ws, engine, "faulty")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError(), launcher.LaunchFailed(""),
                                   launcher.LaunchFailed(" ")])
def test_every_failure_is_said_in_a_sentence(error: BaseException) -> None:
    cause, _hint = describe(error)
    assert cause.strip().endswith(".") and len(cause.split()) >= 4, cause
