"""A GPU-capable test engine: containers with GPU device requests really start here.

This machine has no GPU. A separate dockerd (scripts/second-engine with PTDESK_ENGINE_GPU_HOOK=1:
its own socket, data root, bridge, and a no-op `nvidia-container-runtime-hook` first on its PATH)
accepts and starts containers created with `DeviceRequests` for GPU ids; NVML is replaced at the
pynvml function boundary by a scenario of N GPUs (tests/core/nvml_scenarios.py). Together they let
the GPU-sharing paths (holds, re-creation on other GPUs, admission) run end to end, containers really
running. The machine's main engine is never touched.

Fixtures (tests/e2e/conftest.py): `gpu_engine` (session) and `gpu_desk` (per test: its own home,
instance and NVML scenario, the CLI run in-process so the scenario reaches it).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml
import pytest
from helpers import REPO, SSH_IMAGE, remove_instance_containers, run_cli

sys.path.insert(0, str(REPO / "tests" / "core"))
import nvml_scenarios  # noqa: E402

from ptdesk.config import load_config  # noqa: E402
from ptdesk.core.engine import Engine  # noqa: E402
from ptdesk.core.workstation import Workstation  # noqa: E402

# The images the GPU tests launch; others are loaded on demand (GpuEngine.ensure_image).
PRELOADED = (SSH_IMAGE,)


@dataclass
class GpuEngine:
    """The running GPU test engine: its DOCKER_HOST and a client of it."""

    docker_host: str
    engine: Engine

    def ensure_image(self, ref: str) -> str:
        """Copy an image of the main engine into this one (docker save | load), once."""
        if self.engine.image_exists(ref):
            return ref
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", self.docker_host, "load", "-q"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=300)
        save.wait(timeout=300)
        if save.returncode != 0 or load.returncode != 0:
            pytest.fail(f"could not load {ref} into the GPU test engine: {load.stderr.strip()}", pytrace=False)
        return ref


@contextmanager
def started_gpu_engine() -> Iterator[GpuEngine]:
    if os.geteuid() != 0:
        pytest.skip("the GPU test engine needs root (scripts/second-engine starts dockerd and makes a bridge)")
    script = str(REPO / "scripts" / "second-engine")
    folder = tempfile.mkdtemp(prefix="ptdesk-gpu-engine-", dir="/tmp")  # a socket path stays short
    bridge = f"ptg{uuid.uuid4().hex[:8]}"
    cidr = f"172.31.{random.randint(100, 199)}.1/24"
    # Networks from a pool of its own: several engines on one machine exhaust Docker's default pools.
    env = {**os.environ, "PTDESK_ENGINE_GPU_HOOK": "1",
           "PTDESK_ENGINE_ADDRESS_POOL": f"10.{random.randint(100, 250)}.0.0/16"}
    started = subprocess.run([script, "start", folder, bridge, cidr], capture_output=True, text=True,
                             timeout=120, env=env)
    engine = None
    try:
        if started.returncode != 0:
            pytest.fail(f"the GPU test engine did not start: {started.stderr.strip()}", pytrace=False)
        docker_host = started.stdout.strip().splitlines()[-1]
        saved, os.environ["DOCKER_HOST"] = os.environ.get("DOCKER_HOST"), docker_host
        try:
            engine = Engine.connect()
        finally:
            _restore("DOCKER_HOST", saved)
        gpu = GpuEngine(docker_host, engine)
        for ref in PRELOADED:
            gpu.ensure_image(ref)
        yield gpu
    finally:
        if engine is not None:
            engine.close()
        subprocess.run([script, "stop", folder, bridge], capture_output=True, text=True, timeout=120)


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@dataclass
class GpuDesk:
    """The `ptdesk` CLI of one test on the GPU engine, with an NVML scenario of N GPUs installed.

    Commands run in-process (CliRunner), where the scenario replaces pynvml; `scenario` can be
    edited between commands (a process appears on a GPU, a GPU gets busy)."""

    env: dict[str, str]
    gpu: GpuEngine
    scenario: nvml_scenarios.Scenario
    monkeypatch: pytest.MonkeyPatch
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.gpu.engine

    @property
    def home(self) -> Path:
        return Path(self.env["PTDESK_HOME"])

    @property
    def instance(self) -> str:
        return self.env["PTDESK_INSTANCE"]

    def install(self, scenario: nvml_scenarios.Scenario) -> nvml_scenarios.Scenario:
        for name, fn in scenario.functions().items():
            self.monkeypatch.setattr(pynvml, name, fn)
        self.scenario = scenario
        return scenario

    def workstation(self) -> Workstation:
        """The core's Workstation on this desk (what the dashboard uses); the process environment
        is pointed at the GPU engine and this home for the rest of the test. Close it."""
        for key in ("DOCKER_HOST", "PTDESK_HOME", "PTDESK_INSTANCE", "PTDESK_SSH_IMAGE"):
            self.monkeypatch.setenv(key, self.env[key])
        return Workstation(load_config(self.env))

    def run(self, *args: object, extra_env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return run_cli([str(a) for a in args], {**self.env, **(extra_env or {})})

    def ok(self, *args: object, **kwargs: Any) -> str:
        rc, out, err = self.run(*args, **kwargs)
        assert rc == 0, f"ptdesk {' '.join(map(str, args))} exited {rc}: {err.strip()}"
        return out

    def json(self, *args: object, **kwargs: Any) -> Any:
        import json

        return json.loads(self.ok(*args, "--json", **kwargs))

    def new(self, *args: object) -> dict:
        """`ptdesk new ssh --json ...` on the GPU engine."""
        return self.json("new", "ssh", "--cpus", "1", *args)

    def fails(self, *args: object, rc: int | None = None) -> list[str]:
        """A command that fails as a PtdeskError does: one sentence (and a hint), no traceback."""
        code, out, err = self.run(*args)
        assert code != 0, f"expected a failure, got rc 0 and {out!r}"
        assert rc is None or code == rc, f"expected exit {rc}, got {code}: {err!r}"
        assert "Traceback" not in out + err
        # A launch's progress lines ("  Checking the image...") come first on stderr.
        lines = [ln for ln in err.strip().splitlines() if not ln.endswith("...")]
        assert 1 <= len(lines) <= 2 and lines[0].startswith("ptdesk: "), err
        return lines

    def device_ids(self, container: str) -> list[str] | None:
        """The GPU ids the engine really gives a container (None: no GPU request at all)."""
        requests = (self.engine.inspect(container).get("HostConfig") or {}).get("DeviceRequests") or []
        gpu = [r for r in requests if any("gpu" in (c or []) for c in r.get("Capabilities") or [])]
        return list(gpu[0].get("DeviceIDs") or []) if gpu else None

    def gpu_env(self, container: str) -> str | None:
        """NVIDIA_VISIBLE_DEVICES as the container's first process got it from the engine (set in
        its OCI spec, not in Config.Env, so an exec does not see it)."""
        code, out = self.engine.exec(container, ["sh", "-c", "tr '\\0' '\\n' </proc/1/environ"])
        found = [ln.split("=", 1)[1] for ln in out.decode().splitlines() if ln.startswith("NVIDIA_VISIBLE_DEVICES=")]
        return found[0] if code == 0 and found else None


@contextmanager
def gpu_desk_for(gpu: GpuEngine, home: Path, monkeypatch: pytest.MonkeyPatch, gpus: int = 4) -> Iterator[GpuDesk]:
    instance = f"t-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": instance, "DOCKER_HOST": gpu.docker_host,
           "PTDESK_SSH_IMAGE": SSH_IMAGE}
    env.pop("PTDESK_BIND_ADDRESS", None)
    desk = GpuDesk(env, gpu, nvml_scenarios.idle(gpus), monkeypatch)
    desk.install(desk.scenario)
    try:
        yield desk
    finally:
        remove_instance_containers(gpu.engine, instance)
