"""Host PID -> container -> experiment and person: cgroup parsing on fixture text for every format,
then the real thing on the Docker engine (no mocked Docker)."""

from __future__ import annotations

import getpass
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
from click.testing import CliRunner

from ptdesk.cli import main
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
from ptdesk.core.engine.client import Engine
from ptdesk.core.gpu import procmap
from ptdesk.core.gpu.procmap import ContainerRef, attribute, container_from_cgroup, resolve_pid, uid_from_status
from ptdesk.core.store.state import ExperimentRecord, Store
from tests.support.nvml_scenarios import FakeProc, healthy

A = "3f" * 32
B = "b7" * 32
IMAGE = "ptdesk-test/debian-base:bookworm"

V1_CONTROLLERS = ("cpuset", "cpu,cpuacct", "blkio", "memory", "devices", "freezer", "net_cls,net_prio", "pids")


def v1(path: str) -> str:
    lines = [f"{12 - i}:{c}:{path}" for i, c in enumerate(V1_CONTROLLERS)]
    return "\n".join([*lines, f"1:name=systemd:{path}", "0::/"]) + "\n"


CASES = {
    "docker cgroupfs v1": (v1(f"/docker/{A}"), ContainerRef(A, "docker")),
    "docker systemd v1": (v1(f"/system.slice/docker-{A}.scope"), ContainerRef(A, "docker")),
    "docker systemd v2": (f"0::/system.slice/docker-{A}.scope\n", ContainerRef(A, "docker")),
    "docker cgroupfs v2": (f"0::/docker/{A}\n", ContainerRef(A, "docker")),
    "docker systemd v2 nested scope": (f"0::/system.slice/docker-{A}.scope/init.scope\n",
                                       ContainerRef(A, "docker")),
    "docker-in-docker is the outer one": (f"0::/docker/{A}/docker/{B}\n", ContainerRef(A, "docker")),
    "podman rootful v2": (f"0::/machine.slice/libpod-{B}.scope/container\n", ContainerRef(B, "podman")),
    "podman rootless v2": (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{B}.scope\n",
                           ContainerRef(B, "podman")),
    "podman cgroupfs v1": (v1(f"/libpod_parent/libpod-{B}"), ContainerRef(B, "podman")),
    "podman cgroupfs v1 bare id": (v1(f"/libpod_parent/{B}/ctr"), ContainerRef(B, "podman")),
    "kubepods cgroupfs v1": (v1(f"/kubepods/besteffort/pod0d9f5c2e-1b1a-4c55-9b0e-2f1d5a9e7c11/{A}"),
                             ContainerRef(A, "containerd")),
    "kubepods containerd systemd v2": (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d9f5c2e_1b1a.slice/"
        f"cri-containerd-{A}.scope\n", ContainerRef(A, "containerd")),
    "kubelet systemd cgroupfs-style": (
        f"0::/system.slice/containerd.service/kubepods-besteffort-pod0d9f.slice:cri-containerd:{A}\n",
        ContainerRef(A, "containerd")),
    "cri-o v2": (f"0::/kubepods.slice/kubepods-pod1.slice/crio-{B}.scope\n", ContainerRef(B, "cri-o")),
}
NOT_CONTAINERS = {
    "host session v2": "0::/user.slice/user-1000.slice/session-3.scope\n",
    "host v1 root": v1("/"),
    "podman conmon is not the container": f"0::/machine.slice/libpod-conmon-{B}.scope\n",
    "a 32-hex sandbox id": "4:memory:/process_api/eb3c512b57b4e6cf18869527317a3d15\n0::/\n",
    "short id": "0::/docker/3f3f3f3f3f3f\n",
    "empty": "",
    "garbage": "not a cgroup file\n::\n",
}


@pytest.mark.parametrize("text,expected", CASES.values(), ids=CASES.keys())
def test_container_cgroup_formats(text: str, expected: ContainerRef) -> None:
    assert container_from_cgroup(text) == expected


@pytest.mark.parametrize("text", NOT_CONTAINERS.values(), ids=NOT_CONTAINERS.keys())
def test_host_cgroups_are_no_container(text: str) -> None:
    assert container_from_cgroup(text) is None


def test_uid_from_status() -> None:
    status = "Name:\tpython\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\n"
    assert uid_from_status(status) == 1000
    assert uid_from_status("Name:\tx\n") is None


def write_proc(root: Path, pid: int, cgroup: str, uid: int) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)
    (root / str(pid) / "status").write_text(f"Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")


def test_resolve_from_a_fixture_proc_root(tmp_path: Path) -> None:
    write_proc(tmp_path, 10, f"0::/system.slice/docker-{A}.scope\n", 0)
    write_proc(tmp_path, 11, "0::/user.slice/user-0.slice/session-1.scope\n", 0)
    write_proc(tmp_path, 12, "0::/\n", 4_000_123)  # no passwd entry
    assert resolve_pid(10, tmp_path) == procmap.PidOwner(10, ContainerRef(A, "docker"), 0, "root")
    assert resolve_pid(11, tmp_path).container is None
    assert resolve_pid(12, tmp_path).user == "4000123"
    assert resolve_pid(13, tmp_path) == procmap.PidOwner(13, None, None, None)  # gone: unknown, no error


def snapshot_of(*pids: int) -> GpuSnapshot:
    procs = tuple(GpuProcess(pid=p, used_memory=1) for p in pids)
    return GpuSnapshot(True, None, "580", (GpuSample(0, "GPU-0", "H100", processes=procs),))


def test_attribute_from_the_store_without_an_engine(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc(proc, 10, f"0::/system.slice/docker-{A}.scope\n", 0)
    write_proc(proc, 11, f"0::/docker/{B}\n", 0)
    write_proc(proc, 12, "0::/user.slice\n", 0)
    store = Store(tmp_path / "state.db")
    store.insert_experiment(store.conn, ExperimentRecord(
        name="bert", kind="ssh", owner="alice", image="i", status="running", created=0.0, container_id=A))
    snap = attribute(snapshot_of(10, 11, 12, 13), None, "default", store=store, proc_root=proc)
    got = {p.pid: (p.container, p.experiment, p.owner, p.host_user) for p in snap.gpus[0].processes}
    assert got == {
        10: (A, "bert", "alice", "root"),
        11: (B, None, None, "root"),  # a container ptdesk does not manage
        12: (None, None, "root", "root"),  # a host process: its owner is its user
        13: (None, None, None, None),  # not visible here
    }
    store.close()


def test_attribute_without_processes_asks_nobody() -> None:
    snap = GpuSnapshot(True, None, "580", (GpuSample(0, "GPU-0", "H100"),))
    assert attribute(snap, None, "default") is snap


# --- the real engine ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_containers(engine: Engine) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """Two managed sleepers of a unique instance: instance, {container id: (experiment, owner)}.
    `engine` is the shared session fixture (tests/conftest.py starts the engine if it must)."""
    if not engine.image_exists(IMAGE):
        pytest.fail(f"needs the local image {IMAGE} (scripts/base-image)", pytrace=False)
    instance = f"t-gpu-{secrets.token_hex(4)}"
    made: dict[str, tuple[str, str]] = {}
    try:
        for name, owner in (("bert-finetune", "alice"), ("llama-eval", "bob")):
            cid = engine.create(
                name=f"ptdesk-{instance}-{name}", image=IMAGE, command=["sleep", "300"], host_config={},
                labels={LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_NAME: name, LABEL_OWNER: owner,
                        LABEL_KIND: "ssh"})
            made[cid] = (name, owner)
            engine.start(cid)
        yield instance, made
    finally:
        for cid in made:
            engine.remove(cid)


@pytest.mark.engine
def test_real_container_pids_map_to_experiment_and_owner(engine: Engine, two_containers) -> None:
    instance, made = two_containers
    pids = {cid: engine.top_pids(cid) for cid in made}
    assert all(pids.values())
    for cid, their_pids in pids.items():
        for pid in their_pids:
            assert resolve_pid(pid).container == ContainerRef(cid, "docker")
    me = resolve_pid(os.getpid())
    assert me.container is None and me.user == getpass.getuser()

    all_pids = [p for ps in pids.values() for p in ps] + [os.getpid()]
    snap = attribute(snapshot_of(*all_pids), engine, instance)
    got = {p.pid: p for p in snap.gpus[0].processes}
    for cid, (name, owner) in made.items():
        for pid in pids[cid]:
            assert (got[pid].container, got[pid].experiment, got[pid].owner) == (cid, name, owner)
    assert (got[os.getpid()].container, got[os.getpid()].owner) == (None, getpass.getuser())


def _cli_json(tmp_path: Path, env: dict[str, str]) -> dict:
    result = CliRunner().invoke(main, ["gpus", "--json"], env={"PTDESK_HOME": str(tmp_path), **env},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.engine
def test_ptdesk_gpus_names_the_experiment_and_person(engine: Engine, two_containers, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML reports the containers' host PIDs; `ptdesk gpus` shows whose they are."""
    instance, made = two_containers
    (cid_a, (name_a, owner_a)), (cid_b, (name_b, owner_b)) = made.items()
    pid_a, pid_b = engine.top_pids(cid_a)[0], engine.top_pids(cid_b)[0]
    scenario = healthy()
    scenario.gpus[0].compute = [FakeProc(pid_a, 3 << 30), FakeProc(os.getpid(), 1 << 30)]
    scenario.gpus[1].compute = [FakeProc(pid_b, 5 << 30)]
    for fn_name, fn in scenario.functions().items():
        monkeypatch.setattr(pynvml, fn_name, fn)

    data = _cli_json(tmp_path / "up", {"PTDESK_INSTANCE": instance})
    by_pid = {p["pid"]: p for g in data["gpus"] for p in g["processes"]}
    assert (by_pid[pid_a]["container"], by_pid[pid_a]["experiment"], by_pid[pid_a]["owner"]) == (
        cid_a, name_a, owner_a)
    assert by_pid[pid_a]["used_memory"] == 3 << 30
    assert (by_pid[pid_b]["experiment"], by_pid[pid_b]["owner"]) == (name_b, owner_b)
    assert (by_pid[os.getpid()]["container"], by_pid[os.getpid()]["owner"]) == (None, getpass.getuser())

    table = CliRunner().invoke(main, ["gpus"], env={"PTDESK_HOME": str(tmp_path / "up"),
                                                    "PTDESK_INSTANCE": instance}).output
    row = next(line for line in table.splitlines() if line.split()[:1] == [str(pid_a)])
    assert f"{name_a} ({cid_a[:12]})" in row and owner_a in row

    # Engine down: no failure; the container id still comes from /proc, and the experiment and
    # person from the state store where it has a record.
    down = {"PTDESK_INSTANCE": instance, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    home = tmp_path / "down"
    store = Store(home / "state.db")
    store.insert_experiment(store.conn, ExperimentRecord(name=name_a, kind="ssh", owner=owner_a, image=IMAGE,
                                                         status="running", created=0.0, container_id=cid_a))
    store.close()
    by_pid = {p["pid"]: p for g in _cli_json(home, down)["gpus"] for p in g["processes"]}
    assert (by_pid[pid_a]["container"], by_pid[pid_a]["experiment"], by_pid[pid_a]["owner"]) == (
        cid_a, name_a, owner_a)
    assert (by_pid[pid_b]["container"], by_pid[pid_b]["experiment"], by_pid[pid_b]["owner"]) == (cid_b, None, None)
    assert by_pid[pid_b]["host_user"] == "root"
