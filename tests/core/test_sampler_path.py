"""A remote workstation's GPU truth: the sampler program (what runs in its container) on the NVML
scenario fixtures, its JSON lines read back losslessly, and names filled from a real engine's labels.
No GPU here: NVML is replaced at the pynvml function boundary only (tests/support/nvml_scenarios.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from itertools import islice
from pathlib import Path

import pytest

from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
from ptdesk.core.engine.client import Engine
from ptdesk.core.gpu import wire
from ptdesk.core.gpu.nvml import GpuSampler
from ptdesk.core.gpu.remote import name_processes, sampler_host_config
from ptdesk.core.gpu.sampler_image import program_files
from ptdesk.core.gpu.sampler_main import lines
from tests.support.helpers import BASE_IMAGE
from tests.support.nvml_scenarios import healthy, installed, mig, no_driver, one_lost


def proc_tree(root: Path, pids: dict[int, str]) -> Path:
    """A /proc with the cgroup and status files the sampler reads (pid -> cgroup path)."""
    for pid, cgroup in pids.items():
        folder = root / str(pid)
        folder.mkdir(parents=True)
        (folder / "cgroup").write_text(f"0::{cgroup}\n")
        (folder / "status").write_text(f"Name:\tpython\nUid:\t{1000 + pid}\t{1000 + pid}\t0\t0\n")
    return root


def sampled(scenario, proc_root: Path, count: int = 2) -> list[str]:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    with installed(scenario), GpuSampler(history=1) as sampler:
        return list(islice(lines(sampler, stop, 0.0, proc_root), count))


@pytest.mark.parametrize("scenario", [healthy, one_lost, mig, no_driver], ids=lambda s: s.__name__)
def test_every_scenario_crosses_the_wire_unchanged(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    with installed(scenario()), GpuSampler(history=1) as sampler:
        direct = sampler.sample()
        line = next(lines(sampler, stop, 0.0, proc_tree(tmp_path, {})))
    decoded = wire.decode(line)
    assert decoded.available == direct.available and decoded.reason == direct.reason
    assert [(g.label, g.uuid, g.error, g.memory_used, g.utilization) for g in decoded.gpus] == \
        [(g.label, g.uuid, g.error, g.memory_used, g.utilization) for g in direct.gpus]
    assert "\n" not in line


def test_a_line_ptdesk_does_not_know_is_refused_not_guessed() -> None:
    for bad in ('{"v": 99, "gpus": []}', "[]", "not json", '{"v": 1}'):
        with pytest.raises(ValueError):
            wire.decode(bad)
    # Fields a newer sampler adds are dropped, never an error.
    assert wire.decode('{"v":1,"available":false,"reason":"r","driver":null,"gpus":[],"new":1}').reason == "r"


def test_processes_are_tied_to_containers_by_the_hosts_proc(tmp_path: Path) -> None:
    container = "c0" * 32
    proc = proc_tree(tmp_path, {10: f"/system.slice/docker-{container}.scope", 11: "/user.slice/session-2.scope"})
    scenario = healthy(pids=(10, 11))
    decoded = wire.decode(sampled(scenario, proc)[-1])
    by_pid = {p.pid: p for p in decoded.gpus[0].processes}
    assert by_pid[10].container == container and by_pid[10].experiment is None  # names come from ptdesk's side
    assert by_pid[11].container is None and by_pid[11].host_user == "1011"  # no passwd in the sampler: the uid
    assert by_pid[10].used_memory == 1024**3 and by_pid[10].sm_utilization == 30


@pytest.mark.engine
def test_names_come_from_the_workstations_engine_labels(engine: Engine, tmp_path: Path) -> None:
    """The sampler knows containers; the experiment and person are the engine's labels, read by ptdesk."""
    instance = f"t-sampler-{tmp_path.name[-8:]}"
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_NAME: "train", LABEL_OWNER: "ann"}
    made = engine.api.create_container(BASE_IMAGE, command=["sleep", "60"], labels=labels)["Id"]
    try:
        proc = proc_tree(tmp_path, {20: f"/docker/{made}", 21: "/user.slice/session-2.scope"})
        decoded = wire.decode(sampled(healthy(pids=(20, 21)), proc)[-1])
        named = {p.pid: p for p in name_processes(decoded, engine, instance).gpus[0].processes}
        assert (named[20].experiment, named[20].owner, named[20].container) == ("train", "ann", made)
        assert named[21].experiment is None
        # Without the engine the sample stays as it came: containers known, names not.
        assert name_processes(decoded, None, instance) == decoded
    finally:
        engine.remove(made)


def test_the_sampler_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    """What the container does, from exactly the files its image carries (-S: no site-packages):
    one line per sample on stdout (NVML is really absent here, which is a value), and an exit as
    soon as nobody holds its stdin."""
    app = tmp_path / "app"
    for name, data in program_files().items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    proc = subprocess.Popen([sys.executable, "-S", "-m", "ptdesk.core.gpu.sampler_main"], cwd=app,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PYTHONPATH": str(app), "PTDESK_SAMPLER_INTERVAL": "0.2"})
    try:
        first = wire.decode(proc.stdout.readline())  # type: ignore[union-attr]
        assert first.available is False and first.reason
        proc.stdin.close()  # type: ignore[union-attr]
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_sampler_container_is_given_nothing_it_does_not_need() -> None:
    config = sampler_host_config(gpus=True)
    assert config["cap_drop"] == ["ALL"] and config["read_only"] and config["network_mode"] == "none"
    assert config["security_opt"] == ["no-new-privileges"] and config["auto_remove"]
    assert config["pid_mode"] == "host"  # the one namespace it shares, to read /proc/<pid>/cgroup
    assert "privileged" not in config and "binds" not in config and "cap_add" not in config
    assert "device_requests" not in sampler_host_config(gpus=False)
