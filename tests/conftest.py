"""Fixtures shared by every test. Everything runs against the REAL Docker engine: no mocked client.

- engine (session): a connected ptdesk Engine; starts one with scripts/docker-engine if none answers.
- ptdesk_env: the environment for one test: a fresh PTDESK_HOME (under tmp_path) and a unique
  PTDESK_INSTANCE, so parallel runs on one engine never see each other's containers. On teardown
  every container labelled ptdesk.instance=<that instance> is force-removed.
- ws: ptdesk.core.workstation.Workstation(load_config(ptdesk_env)), closed afterwards.
- sleeper: starts tiny `sleep` containers labelled as managed experiments of the test's instance.
Helpers (run_cli, wait_until, image names) live in tests/support/helpers.py.

Every test that uses the engine (the `engine` fixture, directly or through another fixture) is
marked `engine` at collection, so `scripts/test -m "not engine"` is a fast tier without containers.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.types
import pytest

from ptdesk.config import load_config
from ptdesk.core.base.models import LABEL_GPUS, LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from ptdesk.errors import EngineUnavailable
from tests.support.helpers import (
    BASE_IMAGE,
    REPO,
    TEST_IMAGE_ENV,
    remove_instance_containers,
    require_image,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests whose fixtures reach the engine (the fixture closure includes `engine`)."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


def _connect_or_start() -> Engine:
    try:
        return Engine.connect()
    except EngineUnavailable:
        # Same path CI takes: install/start dockerd if we may, else this fails with its reason.
        proc = subprocess.run([str(REPO / "scripts" / "docker-engine")], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"no Docker engine: scripts/docker-engine said: {proc.stderr.strip()}", pytrace=False)
        return Engine.connect()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    eng = _connect_or_start()
    yield eng
    eng.close()


@pytest.fixture
def ptdesk_env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A full environment dict (os.environ + PTDESK_HOME + PTDESK_INSTANCE) for load_config / run_cli."""
    instance = f"t-{uuid.uuid4().hex[:10]}"
    home = tmp_path / "ptdesk-home"
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": instance}
    # A developer's own overrides must not leak into tests; tests use the images under test (helpers).
    env.pop("PTDESK_BIND_ADDRESS", None)
    env.update(TEST_IMAGE_ENV)
    yield env
    _remove_containers_of(instance)


def _remove_containers_of(instance: str) -> None:
    """Teardown: leave nothing behind on the shared engine, even after a failed test."""
    try:
        eng = Engine.connect(timeout=10)
    except EngineUnavailable:
        return  # no engine: this test cannot have created containers either
    try:
        remove_instance_containers(eng, instance)
    finally:
        eng.close()


@pytest.fixture
def ws(ptdesk_env: dict[str, str]) -> Iterator[Workstation]:
    d = Workstation(load_config(ptdesk_env))
    yield d
    d.close()


Sleeper = Callable[..., str]


@pytest.fixture
def sleeper(engine: Engine, ptdesk_env: dict[str, str]) -> Iterator[Sleeper]:
    """Start a tiny container labelled as a managed experiment of this test's instance.

    `script` runs under sh (default: sleep); the container is force-removed by ptdesk_env's teardown.
    """
    require_image(engine, BASE_IMAGE)
    instance = ptdesk_env["PTDESK_INSTANCE"]

    def start(name: str, owner: str = "alice", kind: str = "ssh", script: str = "sleep 3600",
              gpus: str = "", devices: tuple[str, ...] = (), labels: dict[str, str] | None = None) -> str:
        """`devices`: GPU ids the engine really gives it. Without a GPU runtime (as here) such a
        container can be created but not started; created, it holds them as a stopped one does."""
        labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_KIND: kind, LABEL_OWNER: owner,
                  LABEL_NAME: name, LABEL_GPUS: gpus, **(labels or {})}
        host_config: dict = {"init": True, "mem_limit": "256m"}
        if devices:
            host_config["device_requests"] = [docker.types.DeviceRequest(device_ids=list(devices),
                                                                         capabilities=[["gpu"]])]
        cid = engine.create(name=f"ptdesk-{instance}-{name}-{uuid.uuid4().hex[:6]}", image=BASE_IMAGE,
                            labels=labels, command=["sh", "-c", script], host_config=host_config)
        if not devices:
            engine.start(cid)
        return cid

    yield start
