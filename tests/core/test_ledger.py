"""The GPU ledger: parsing, choosing, refusing, and never handing one GPU out twice."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad
from ptdesk.core.gpu.ledger import GpuRequest, allocate, gpus_from_label, held_by_devices, parse_request
from ptdesk.core.store.state import ExperimentRecord, Store
from ptdesk.errors import Conflict, GpuUnavailable, InvalidInput

# GPU 1 is the least loaded; GPU 2 computes nothing but an idle notebook holds 80% of its memory.
FOUR = GpuInventory(True, None, (
    GpuLoad(0, 0.9, 0.5), GpuLoad(1, 0.1, 0.1), GpuLoad(2, 0.0, 0.8), GpuLoad(3, 0.2, 0.25)))
NO_NVML = GpuInventory(False, "No NVIDIA driver is installed on this machine (libnvidia-ml.so.1 was not found).")


# --- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "parsed"), [
    ("none", GpuRequest("none")), ("all", GpuRequest("all")), (" AUTO ", GpuRequest("auto")),
    ("0", GpuRequest("ids", (0,))), ("2, 0", GpuRequest("ids", (2, 0))),
])
def test_parse_request(text: str, parsed: GpuRequest) -> None:
    assert parse_request(text) == parsed


@pytest.mark.parametrize("text", ["", "  ", "gpu0", "0,,1", "-1", "1.5", "0,0", "0;1", "٣"])
def test_malformed_requests_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(text)
    assert info.value.exit_code == 2 and "--gpus" in (info.value.hint or "")
    with pytest.raises(InvalidInput):
        allocate(text, {}, FOUR)


# --- choosing ------------------------------------------------------------------------------------
def test_auto_picks_the_least_loaded_free_gpu() -> None:
    assert allocate("auto", {}, FOUR) == (1,)
    assert allocate("auto", {1: "alice-bert"}, FOUR) == (3,)  # held ones are skipped

def test_auto_weighs_memory_as_load() -> None:
    # GPU 2 computes nothing but its memory is 80% taken; GPU 3 is busier in compute yet freer:
    # the busier of the two resources decides.
    assert allocate("auto", {1: "a"}, FOUR) == (3,)
    assert allocate("auto", {1: "a", 3: "b"}, FOUR) == (2,)  # 0.8 < GPU 0's 0.9


def test_auto_skips_unreadable_gpus() -> None:
    inventory = GpuInventory(True, None, (GpuLoad(0, None, None, error="lost"), GpuLoad(1, 0.5, 0.5)))
    assert allocate("auto", {}, inventory) == (1,)


def test_auto_with_everything_held_names_the_holders() -> None:
    with pytest.raises(GpuUnavailable) as info:
        allocate("auto", {0: "a", 1: "b", 2: "c", 3: "d"}, FOUR)
    assert "4 GPUs" in info.value.message and "1 by 'b'" in info.value.message and info.value.hint


def test_auto_on_a_cpu_only_box_is_no_gpu_and_no_error() -> None:
    assert allocate("auto", {}, NO_NVML) == ()
    assert allocate("auto", {}, GpuInventory(True, None, ())) == ()


def test_none_is_always_nothing() -> None:
    assert allocate("none", {0: "a"}, NO_NVML) == ()
    assert allocate("none", {}, FOUR) == ()


@pytest.mark.parametrize("request_", ["0", "all"])
def test_explicit_gpus_without_nvml_give_the_reason(request_: str) -> None:
    with pytest.raises(GpuUnavailable) as info:
        allocate(request_, {}, NO_NVML)
    assert "libnvidia-ml.so.1 was not found" in info.value.message and "--gpus none" in (info.value.hint or "")


def test_explicit_ids() -> None:
    assert allocate("2,0", {1: "other"}, FOUR) == (2, 0)
    assert allocate(parse_request("3"), {}, FOUR) == (3,)


def test_explicit_bad_index_names_it_and_the_device_count() -> None:
    with pytest.raises(GpuUnavailable) as info:
        allocate("0,7", {}, FOUR)
    assert info.value.message == "There is no GPU 7: this machine has 4 GPUs."
    assert "0-3" in (info.value.hint or "")
    with pytest.raises(GpuUnavailable, match="this machine has 0 GPUs"):
        allocate("0", {}, GpuInventory(True, None, ()))


def test_explicit_held_gpu_is_a_conflict_naming_the_holder() -> None:
    with pytest.raises(Conflict) as info:
        allocate("0,1", {1: "alice-bert"}, FOUR)
    assert "GPU 1" in info.value.message and "'alice-bert'" in info.value.message


def test_explicit_lost_gpu_is_unavailable() -> None:
    inventory = GpuInventory(True, None, (GpuLoad(0, None, None, error="lost"),))
    with pytest.raises(GpuUnavailable, match="GPU 0 cannot be used right now"):
        allocate("0", {}, inventory)


def test_all() -> None:
    assert allocate("all", {}, FOUR) == (0, 1, 2, 3)
    with pytest.raises(Conflict, match="'x'"):
        allocate("all", {2: "x"}, FOUR)


# --- concurrency: the ledger inside the store's BEGIN IMMEDIATE transaction -----------------------
def _launch(store: Store, name: str) -> tuple[int, ...]:
    """What the launcher does: read holds, choose, record, all in one write transaction."""
    with store.tx() as conn:
        gpus = allocate("auto", store.held_gpus(conn), FOUR)
        store.insert_experiment(conn, ExperimentRecord(name=name, kind="ssh", owner="t", image="i",
                                                       status="launching", created=time.time(), gpus=gpus))
    return gpus


def _process_launch(path: str, name: str, barrier: Any, results: Any) -> None:  # mp proxies
    store = Store(Path(path))
    barrier.wait()
    try:
        results.put((name, _launch(store, name)))
    except GpuUnavailable:
        results.put((name, "unavailable"))
    finally:
        store.close()


def test_concurrent_processes_never_get_the_same_gpu(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(5), ctx.Queue()
    procs = [ctx.Process(target=_process_launch, args=(str(path), f"exp{i}", barrier, results)) for i in range(5)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    given = [g for g in got.values() if g != "unavailable"]
    # Four GPUs, five launches: each GPU once, and the fifth launch is told none is free.
    assert sorted(given) == [(0,), (1,), (2,), (3,)]
    assert list(got.values()).count("unavailable") == 1
    store = Store(path)
    assert sorted(store.held_gpus()) == [0, 1, 2, 3]
    store.close()


def test_concurrent_threads_never_get_the_same_gpu(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    stores = [Store(path) for _ in range(4)]  # one connection each, like separate ptdesk processes
    barrier = threading.Barrier(4)
    got: list[tuple[int, ...]] = []

    def run(i: int) -> None:
        barrier.wait()
        got.append(_launch(stores[i], f"exp{i}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [(0,), (1,), (2,), (3,)]
    for s in stores:
        s.close()


def test_the_race_is_real_without_the_transaction(tmp_path: Path) -> None:
    """Control: reading the holds outside the write transaction hands one GPU out twice,
    so the tests above would catch a launcher that did that."""
    path = tmp_path / "state.db"
    stores = [Store(path) for _ in range(3)]
    barrier = threading.Barrier(3)
    got: list[tuple[int, ...]] = []

    def run(i: int) -> None:
        held = stores[i].held_gpus()  # outside the lock: the bug
        barrier.wait()  # everyone has read before anyone writes
        gpus = allocate("auto", held, FOUR)
        with stores[i].tx() as conn:
            stores[i].insert_experiment(conn, ExperimentRecord(
                name=f"exp{i}", kind="ssh", owner="t", image="i", status="launching", created=0.0, gpus=gpus))
        got.append(gpus)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [(1,), (1,), (1,)]
    for s in stores:
        s.close()


def test_no_inventory_is_fine_only_for_none() -> None:
    assert allocate("none", {}, None) == ()  # the launcher skips NVML entirely for --gpus none
    assert allocate("auto", {}, None) == ()
    with pytest.raises(GpuUnavailable):
        allocate("0", {}, None)


# --- holds seen through labels: every user's containers, not only this store's records ---------
@pytest.mark.parametrize(("label", "parsed"), [
    ("", ()), (None, ()), ("0", (0,)), ("0,2", (0, 2)), (" 1 , 3 ", (1, 3)),
    ("x", None), ("0,x", None), ("-1", None), ("1.5", None), ("٣", None),
])
def test_gpus_from_label_never_raises(label: str | None, parsed: tuple[int, ...] | None) -> None:
    assert gpus_from_label(label) == parsed


def _gpu_request(**request: object) -> dict:
    return {"HostConfig": {"DeviceRequests": [{"Capabilities": [["gpu"]], **request}]}}


def test_holds_are_what_the_engine_gives_not_what_labels_claim() -> None:
    inspected = {
        "bob-train": _gpu_request(DeviceIDs=["0", "1"]),
        "liar": {"Config": {"Labels": {"ptdesk.gpus": "2,3"}}, "HostConfig": {"DeviceRequests": None}},
        "by-uuid": _gpu_request(DeviceIDs=["GPU-5f1c"]),  # which index that is, is unknown: all held
        "cpu": {"HostConfig": {}}, "gone": None,
    }
    held = held_by_devices({k: v for k, v in inspected.items() if k != "by-uuid"}, range(4))
    assert held == {0: "bob-train", 1: "bob-train"}  # the liar's label books nothing
    with pytest.raises(Conflict, match="'bob-train'"):
        allocate("1", held, FOUR)
    assert held_by_devices({"by-uuid": inspected["by-uuid"]}, range(4)) == dict.fromkeys(range(4), "by-uuid")
    assert held_by_devices({"all": _gpu_request(Count=-1)}, range(2)) == {0: "all", 1: "all"}


# The machine-wide GPU lock: tests/security/test_gpu_lock.py (it is kept by the engine).
