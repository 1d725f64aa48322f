"""GPU requests people make (`any:N`, `--gpu-memory`) and holds that end after a stop: the ledger."""

from __future__ import annotations

import pytest

from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad
from ptdesk.core.gpu.ledger import GpuRequest, Hold, allocate, holds_from_devices, parse_request
from ptdesk.core.sharing.recreate import layer_roots
from ptdesk.errors import Conflict, GpuUnavailable, InvalidInput

GiB = 1024**3


def _box(*loads: tuple[float, int], total: int = 80 * GiB) -> GpuInventory:
    """GPUs with (utilisation 0..1, bytes used) each."""
    return GpuInventory(True, None, tuple(GpuLoad(i, util, used / total, memory_free=total - used, memory_total=total)
                                          for i, (util, used) in enumerate(loads)))


def test_any_n_is_a_count_next_to_index_lists() -> None:
    assert parse_request("any:2") == GpuRequest("count", count=2)
    assert parse_request("2") == GpuRequest("ids", (2,))  # a bare number stays an index
    assert parse_request("auto").wanted == 1 and parse_request("any:3").wanted == 3
    assert parse_request("any:1", "20G").min_free == 20 * GiB
    assert parse_request("auto", "512MiB").min_free == 512 * 1024**2


@pytest.mark.parametrize(("gpus", "memory", "says"), [
    ("any:0", None, "asks for no GPU"),
    ("any:x", None, "is not a GPU request"),
    ("any:2", "20", "is not an amount of GPU memory"),
    ("any:2", "0G", "is not an amount of GPU memory"),
    ("any:2", "lots", "is not an amount of GPU memory"),
    ("none", "20G", "--gpus none asks for no GPU"),
])
def test_malformed_requests_are_one_sentence_of_bad_input(gpus: str, memory: str | None, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as raised:
        parse_request(gpus, memory)
    assert raised.value.exit_code == 2 and raised.value.hint


def test_any_n_takes_the_least_loaded_free_gpus_with_enough_memory() -> None:
    box = _box((0.9, 10 * GiB), (0.0, 70 * GiB), (0.1, 5 * GiB), (0.0, 0), (0.5, 0))
    assert allocate("any:2", {}, box) == (2, 3)  # GPU 1 is idle but its memory is full
    assert allocate("any:2", {3: "train"}, box) == (2, 4)
    assert allocate(parse_request("any:3", "75G"), {}, box) == (2, 3, 4)
    with pytest.raises(GpuUnavailable, match=r"Only 2 of the 3 GPUs any:3 asks for are free .*held: 3 by 'train'"):
        allocate(parse_request("any:3", "75G"), {3: "train"}, box)


def test_impossible_requests_are_bad_input_not_busy() -> None:
    box = _box((0, 0), (0, 0))
    with pytest.raises(InvalidInput, match=r"any:3 asks for more GPUs than this machine has \(2 GPUs\)"):
        allocate("any:3", {}, box)
    with pytest.raises(InvalidInput, match="No GPU here has 100 GiB of memory: the largest has 80 GiB"):
        allocate(parse_request("auto", "100G"), {}, box)


def test_ids_with_memory_say_which_gpu_lacks_it() -> None:
    box = _box((0, 70 * GiB), (0, 0))
    assert allocate(parse_request("1", "20G"), {}, box) == (1,)
    with pytest.raises(GpuUnavailable, match=r"GPU 0 cannot be used right now \(10 GiB free, 20 GiB asked for\)"):
        allocate(parse_request("0", "20G"), {}, box)


def test_unclaimed_use_makes_a_gpu_not_free_and_says_so() -> None:
    busy = GpuLoad(0, 0.0, 0.5, memory_free=40 * GiB, memory_total=80 * GiB,
                   unclaimed="unclaimed use: 40 GiB by pid 4242 (bob), outside every ptdesk experiment")
    box = GpuInventory(True, None, (busy, GpuLoad(1, 0.3, 0.1, memory_free=72 * GiB, memory_total=80 * GiB)))
    assert allocate("auto", {}, box) == (1,)
    with pytest.raises(GpuUnavailable, match="pid 4242 \\(bob\\)"):
        allocate("auto", {1: "train"}, box)
    with pytest.raises(GpuUnavailable, match="GPU 0 cannot be used right now \\(unclaimed use"):
        allocate("0", {}, box)


def _container(status: str, finished: str, ids: list[str]) -> dict:
    return {"State": {"Status": status, "Running": status == "running", "FinishedAt": finished},
            "Config": {"Labels": {"ptdesk.owner": "ann"}},
            "HostConfig": {"DeviceRequests": [{"DeviceIDs": ids, "Capabilities": [["gpu"]]}]}}


def test_a_stopped_container_holds_its_gpus_only_for_the_hold() -> None:
    stopped_at = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    docs = {"g1": _container("exited", "2027-01-15T08:00:00.5Z", ["0", "2"]),
            "run": _container("running", "0001-01-01T00:00:00Z", ["1"]),
            "new": _container("created", "0001-01-01T00:00:00Z", ["3"])}
    within = holds_from_devices(docs, range(4), now=stopped_at + 599, hold_seconds=600)
    assert within[0] == Hold("g1", "ann", "stopped", stopped_at + 600.5)
    assert within[1].state == "running" and within[3].state == "created"
    after = holds_from_devices(docs, range(4), now=stopped_at + 601, hold_seconds=600)
    assert sorted(after) == [1, 3]
    with pytest.raises(Conflict, match="stopped; it keeps its GPUs until") as raised:
        allocate("0", within, _box((0, 0), (0, 0), (0, 0), (0, 0)))
    assert "stop that experiment first" not in (raised.value.hint or "")
    # Held by a running one: stopping it would not free the GPU either (the hold), so that is not
    # the advice; removing it frees it at once.
    with pytest.raises(Conflict, match="GPU 1 is held by experiment 'run'") as raised:
        allocate("1", within, _box((0, 0), (0, 0), (0, 0), (0, 0)))
    hint = raised.value.hint or ""
    assert "stop that experiment first" not in hint and "gpu_hold_after_stop" in hint and "ptdesk rm run" in hint


def test_re_creation_copies_the_fewest_paths_that_carry_every_change() -> None:
    """What ptdesk.core.sharing.recreate copies from `docker diff`: an added folder whole, changed files,
    never a changed folder whole (its listed contents are copied), never the engine's own files."""
    changes = [{"Path": "/home", "Kind": 0}, {"Path": "/home/ann", "Kind": 0},
               {"Path": "/home/ann/.local", "Kind": 1}, {"Path": "/home/ann/.local/lib/x.py", "Kind": 1},
               {"Path": "/home/ann/notes.txt", "Kind": 1}, {"Path": "/etc", "Kind": 0},
               {"Path": "/etc/passwd", "Kind": 0}, {"Path": "/etc/hosts", "Kind": 0},
               {"Path": "/etc/ssh", "Kind": 0}, {"Path": "/etc/ssh/moduli", "Kind": 2},
               {"Path": "/usr", "Kind": 0}, {"Path": "/usr/sbin", "Kind": 0},
               {"Path": "/usr/sbin/docker-init", "Kind": 1}, {"Path": "/opt", "Kind": 0}]
    assert layer_roots(changes) == [("/etc/passwd", True), ("/home/ann/.local", False),
                                    ("/home/ann/notes.txt", False), ("/opt", True)]


def test_when_free_with_a_malformed_request_hints_its_own_forms_not_gpus() -> None:
    """The hint was --gpus's (none, all, auto ...), which `ptdesk notify --when-free` refuses."""
    from types import SimpleNamespace

    from ptdesk.core.sharing.when_free import wish

    for typed in ("abc", "any:0"):
        with pytest.raises(InvalidInput) as refused:
            wish(SimpleNamespace(name="local"), typed)  # type: ignore[arg-type]  # refused before it is asked
        assert (refused.value.hint or "").startswith("For example: ptdesk notify --when-free")
