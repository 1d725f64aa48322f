"""Fixtures for the end-to-end SSH and Jupyter suites: the real CLI against the real engine.

Launching a container costs seconds on a shared 2-core box, so a module launches one container and
shares it between the tests whose assertions do not disturb each other (`module_env` gives that
module its own PTDESK_HOME and PTDESK_INSTANCE, and force-removes the instance's containers at the
end). Tests that stop, restart or remove a container launch their own with the per-test
`ptdesk_env` from tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e.gpu_engine import GpuDesk, GpuEngine, gpu_desk_for, started_gpu_engine
from helpers import (
    JUPYTER_IMAGE,
    REPO,
    SSH_IMAGE,
    remove_instance_containers,
    require_image,
    run_cli,
    wait_until,
)

from ptdesk.config import Config, load_config
from ptdesk.core.engine import Engine
from ptdesk.core.models import LABEL_INSTANCE
from ptdesk.core.workstation import Workstation


@dataclass(frozen=True)
class Ptdesk:
    """The `ptdesk` command for one environment, plus read-only views of what it left behind."""

    env: dict[str, str]

    @property
    def config(self) -> Config:
        return load_config(self.env)

    @property
    def home(self) -> Path:
        return Path(self.env["PTDESK_HOME"])

    @property
    def instance(self) -> str:
        return self.env["PTDESK_INSTANCE"]

    def run(self, *args: object, subprocess_: bool = False, extra_env: dict[str, str] | None = None,
            timeout: float = 180) -> tuple[int, str, str]:
        env = {**self.env, **(extra_env or {})}
        return run_cli([str(a) for a in args], env, subprocess_=subprocess_, timeout=timeout)

    def ok(self, *args: object, **kwargs: Any) -> str:
        rc, out, err = self.run(*args, **kwargs)
        assert rc == 0, f"ptdesk {' '.join(map(str, args))} exited {rc}: {err.strip()}"
        return out

    def json(self, *args: object, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kwargs))

    def new(self, kind: str, *args: object, extra_env: dict[str, str] | None = None) -> dict:
        """`ptdesk new KIND --json ...` exactly as a user runs it (a subprocess); returns its JSON."""
        return self.json("new", kind, *args, subprocess_=True, extra_env=extra_env)

    def listed(self, all: bool = True) -> dict[str, dict]:
        """`ptdesk ls [--all] --json`, keyed by name."""
        items = self.json("ls", *(["--all"] if all else []))
        return {item["name"]: item for item in items}

    def records(self) -> set[str]:
        """Experiment names in the state database (read directly: what ls shows is derived)."""
        path = self.home / "state.db"
        if not path.exists():
            return set()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT name FROM experiments")}
        finally:
            conn.close()

    def experiment_folder(self, name: str) -> Path:
        return self.home / "experiments" / name

    def fails(self, *args: object, **kwargs: Any) -> list[str]:
        """Run a command that must fail as a PtdeskError does: non-zero, no traceback, one
        sentence on stderr (plus an optional hint line). Returns the stderr lines."""
        rc, out, err = self.run(*args, **kwargs)
        assert rc != 0, f"expected a failure, got rc 0 and {out!r}"
        assert "Traceback" not in out + err
        lines = err.strip().splitlines()
        assert 1 <= len(lines) <= 2, f"expected one error line (and a hint), got: {err!r}"
        assert lines[0].startswith("ptdesk: "), err
        if len(lines) == 2:
            assert lines[1].startswith("  hint: "), err
        return lines

    def assert_nothing_left(self, engine: Engine, name: str) -> None:
        """What a failed launch must leave: no container of the instance, no record, no secrets,
        and no default workspace folder made for it."""
        assert instance_containers(engine, self.instance) == []
        assert name not in self.records()
        assert not self.experiment_folder(name).exists()
        assert not (self.home / "workspaces" / name).exists()

    def assert_removed(self, engine: Engine, experiment: dict, port: int, owner_key: bool = True) -> None:
        """After `ptdesk rm`: container, secrets folder and record gone, port free, owner key kept
        (SSH experiments make one; Jupyter ones have none)."""
        name = experiment["name"]
        assert engine.try_inspect(experiment["id"]) is None
        assert not self.experiment_folder(name).exists()
        assert name not in self.records()
        assert name not in self.listed(all=True)
        wait_until(lambda: self.port_free(port), timeout=15, message=f"port {port} to be free")
        if owner_key:
            self.assert_owner_key(experiment["owner"])

    def port_free(self, port: int) -> bool:
        return port_is_free(self.config.bind_address, port)

    def assert_owner_key(self, owner: str) -> Path:
        """The owner's personal key: 0600 in a 0700 folder, outliving every container."""
        path = self.home / "keys" / "users" / owner / "id_ed25519"
        assert path.is_file(), f"{path} is missing"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, oct(path.parent.stat().st_mode)
        return path


def instance_containers(engine: Engine, instance: str) -> list[dict]:
    return engine.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})


def port_is_free(host: str, port: int) -> bool:
    """Whether a new server could listen on the port now (as docker-proxy would, with SO_REUSEADDR:
    connections of the old one lingering in TIME_WAIT do not hold a port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[dict[str, str]]:
    """Like ptdesk_env, for a whole module: its own home and instance, its containers removed after."""
    require_image(engine, SSH_IMAGE)
    require_image(engine, JUPYTER_IMAGE)
    instance = f"t-{uuid.uuid4().hex[:10]}"
    home = tmp_path_factory.mktemp("ptdesk-module") / "home"
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": instance}
    for key in ("PTDESK_BIND_ADDRESS", "DOCKER_HOST"):
        env.pop(key, None)
    env.update(PTDESK_SSH_IMAGE=SSH_IMAGE, PTDESK_JUPYTER_IMAGE=JUPYTER_IMAGE)
    yield env
    remove_instance_containers(engine, instance)


@pytest.fixture(scope="module")
def module_desk(module_env: dict[str, str]) -> Ptdesk:
    return Ptdesk(module_env)


@pytest.fixture
def cli(ptdesk_env: dict[str, str], engine: Engine) -> Ptdesk:
    """The CLI for one test's own environment (for tests that stop, restart or remove)."""
    require_image(engine, SSH_IMAGE)
    require_image(engine, JUPYTER_IMAGE)
    return Ptdesk(ptdesk_env)


@pytest.fixture
def keygen(tmp_path: Path) -> Callable[[str], Path]:
    """Make a key pair with the real OpenSSH tool (what a person brings); returns the private key."""

    def make(label: str) -> Path:
        folder = tmp_path / label
        folder.mkdir(mode=0o700, parents=True)
        private = folder / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{label}@laptop", "-f", str(private)],
                       check=True, capture_output=True)
        return private

    return make


@pytest.fixture(scope="session")
def second_engine() -> Iterator[str]:
    """A second Docker engine for the session (scripts/second-engine: its own socket, data root, exec
    root, pid file and bridge, host iptables untouched), a stand-in for another workstation. Yields its
    DOCKER_HOST; stopped, its bridge and folder removed at the end of the session."""
    if os.geteuid() != 0:
        pytest.skip("a second engine needs root (scripts/second-engine starts dockerd and makes a bridge)")
    script = str(REPO / "scripts" / "second-engine")
    # Under /tmp directly: a Unix socket path must stay under 108 bytes.
    folder = tempfile.mkdtemp(prefix="ptdesk-engine2-", dir="/tmp")
    bridge = f"ptb{uuid.uuid4().hex[:8]}"  # interface names are at most 15 characters
    cidr = f"172.30.{random.randint(100, 199)}.1/24"
    started = subprocess.run([script, "start", folder, bridge, cidr], capture_output=True, text=True, timeout=120)
    try:
        if started.returncode != 0:
            pytest.fail(f"scripts/second-engine start failed: {started.stderr.strip()}", pytrace=False)
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", folder, bridge], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def boxes(module_desk: Ptdesk) -> dict[str, dict]:
    """m1, m2 (ssh) and nb (jupyter), shared by a module's tests that do not stop or break containers."""
    out = {name: module_desk.new("ssh", "--name", name, "--cpus", "1") for name in ("m1", "m2")}
    out["nb"] = module_desk.new("jupyter", "--name", "nb", "--cpus", "1")
    return out


@pytest.fixture
def module_core(module_desk: Ptdesk) -> Iterator[Workstation]:
    """The core API on the module's environment (what the dashboard calls)."""
    ws = Workstation(module_desk.config)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def gpu_engine(engine: Engine) -> Iterator[GpuEngine]:
    """A GPU-capable engine for the session (tests/e2e/gpu_engine.py): containers with GPU device
    requests really start on it. The SSH image under test is loaded into it."""
    require_image(engine, SSH_IMAGE)
    with started_gpu_engine() as gpu:
        yield gpu


@pytest.fixture
def gpu_desk(gpu_engine: GpuEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GpuDesk]:
    """The CLI of one test on the GPU engine: its own home and instance, an NVML scenario of four
    idle GPUs (`gpu_desk.install(...)` for another); its containers removed afterwards."""
    with gpu_desk_for(gpu_engine, tmp_path / "ptdesk-home", monkeypatch, gpus=4) as desk:
        yield desk
