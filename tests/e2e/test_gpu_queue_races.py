"""Races and crashes around admission, on the GPU-capable test engine: three people's queued
requests while GPUs free one by one, two ptdesks admitting and two plain launches racing; an
admission that died half-way is finished or undone."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from e2e.test_gpu_queue import core, person

from ptdesk.core.engine.locks import GpuLockBusy
from ptdesk.core.gpu_desk import GpuDesk as Desk
from ptdesk.core.sharing import records
from ptdesk.core.sharing.admission import ADMIT_SUFFIX
from ptdesk.core.sharing.gpu_queue import ADMITTED, LABEL_FROM, LABEL_QUEUE
from ptdesk.core.sharing.recreate import copy_layer
from ptdesk.errors import PtdeskError
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import wait_until

PEOPLE, EACH = ("ann", "bob", "cy"), 5


def running_gpus(desk: GpuDesk) -> dict[str, list[str]]:
    """Container id -> GPU ids, for every running container of the test's instance."""
    out = {}
    for c in desk.engine.list_managed(desk.instance, all=False):
        ids = desk.device_ids(c["Id"]) if desk.engine.try_inspect(c["Id"]) else None
        if ids:
            out[c["Id"]] = ids
    return out


def assert_each_gpu_once(desk: GpuDesk) -> None:
    given = [g for ids in running_gpus(desk).values() for g in ids]
    assert len(given) == len(set(given)), f"a GPU was given twice: {sorted(given)}"


# Twice in every run; PTDESK_RACE_ROUNDS=20 repeats it more (each round is a fresh box and queue).
@pytest.mark.parametrize("round_", range(int(os.environ.get("PTDESK_RACE_ROUNDS", "2"))))
def test_many_queued_requests_two_admitters_and_two_racing_launches(gpu_desk: GpuDesk, tmp_path: Path,
                                                                     round_: int) -> None:
    desks = {u: person(gpu_desk, tmp_path, u) for u in (*PEOPLE, "dan")}
    holders = [desks["dan"].new("--name", f"h{i}", "--gpus", str(i))["id"] for i in range(4)]
    names = []
    for n in range(EACH):
        for who in PEOPLE:
            made = desks[who].json("new", "ssh", "--cpus", "1", "--name", f"{who}-{n}", "--gpus", "auto", "--queue")
            assert made["status"].startswith("queued #")
            names.append(made["name"])
    stop = threading.Event()
    errors: list[str] = []
    busy: list[int] = []
    launched: list[tuple[int, ...]] = []
    refusals: list[str] = []

    def admitter(ws) -> None:
        desk = Desk(ws)
        while not stop.is_set():
            try:
                desk.admit()
            except GpuLockBusy:
                busy.append(1)  # others took turns with the lock all along: the next round tries again, as watch does
            except PtdeskError as exc:
                errors.append(exc.message)

    def launcher(ws, name: str) -> None:
        while not stop.is_set():
            try:
                ws.reconcile()  # as `ptdesk new` does first
                launched.append(ws.launch(ws.make_spec("ssh", name=name, owner="dan", gpus="auto", cpus=1))
                                .experiment.gpus)
                return
            except PtdeskError as exc:
                refusals.append(exc.message)  # no GPU for a plain launch while the queue claims them: again
            except BaseException as exc:
                refusals.append(repr(exc))
                raise

    admitters = [core(desks[u]) for u in ("ann", "bob")]
    launchers = [core(desks["dan"]) for _ in range(2)]
    threads = [threading.Thread(target=admitter, args=(ws,), daemon=True) for ws in admitters]
    threads += [threading.Thread(target=launcher, args=(ws, f"race-{i}"), daemon=True)
                for i, ws in enumerate(launchers)]
    for t in threads:
        t.start()
    admitted: dict[str, set[str]] = {}

    def seen() -> int:
        for c in gpu_desk.engine.list_managed(gpu_desk.instance):
            labels = c.get("Labels") or {}
            if labels.get(LABEL_QUEUE) == ADMITTED and not c["Names"][0].endswith(ADMIT_SUFFIX):
                admitted.setdefault(labels["ptdesk.name"], set()).add(c["Id"])
        assert_each_gpu_once(gpu_desk)
        return len(admitted)

    try:
        # GPUs free one by one: first the holders', then the admitted ones' (each freed GPU lets one more in).
        freeing = list(holders)
        while seen() < len(names):
            before = seen()
            if freeing:
                gpu_desk.engine.remove(freeing.pop(0), force=True)
            wait_until(lambda b=before: seen() > b, timeout=60, message="one more request admitted")
            freeing += [i for n in sorted(admitted) for i in admitted[n] if i not in freeing
                        and gpu_desk.engine.try_inspect(i)]
        for cid in freeing:  # the queue is empty: the racing launches get what frees now
            gpu_desk.engine.remove(cid, force=True)
        wait_until(lambda: len(launched) == 2, timeout=120, message=f"both plain launches ({refusals[-3:]})")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        for ws in admitters + launchers:
            ws.close()
    assert errors == []
    assert sorted(admitted) == sorted(names) and all(len(ids) == 1 for ids in admitted.values())
    assert len(set(launched[0]) | set(launched[1])) == 2  # one GPU each, not the same
    assert_each_gpu_once(gpu_desk)
    for who in PEOPLE:
        assert desks[who].json("queue")["queue"] == []


def test_an_admission_that_died_half_way_is_undone_or_finished(two_gpus_desk: GpuDesk, tmp_path: Path) -> None:
    ann, bob = person(two_gpus_desk, tmp_path, "ann"), person(two_gpus_desk, tmp_path, "bob")
    held = [ann.new("--name", f"a{i}", "--gpus", str(i))["id"] for i in range(2)]
    entry = bob.json("new", "ssh", "--cpus", "1", "--name", "b1", "--gpus", "auto", "--queue")
    engine = ann.engine
    document = engine.inspect(entry["id"])
    labels = {**document["Config"]["Labels"], LABEL_QUEUE: ADMITTED, LABEL_FROM: entry["id"]}
    devices = {"DeviceRequests": [{"Driver": "", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]]}]}

    # Died after making the copy, before removing the entry: undone, then admitted properly once.
    half = records.remake(engine, document, document["Name"].lstrip("/") + ADMIT_SUFFIX, labels, devices)
    copy_layer(core(ann), entry["id"], half)
    engine.remove(held[1], force=True)
    assert Desk(core(ann)).admit() == ["b1"]
    assert engine.try_inspect(half) is None
    mine = {e["name"]: e for e in bob.json("ls", "--all")}["b1"]
    assert (mine["status"], mine["gpus"]) == ("running", [1])

    # Died after removing the entry: the next round renames and starts it; its owner takes it over.
    again = bob.json("new", "ssh", "--cpus", "1", "--name", "b2", "--gpus", "auto", "--queue")
    document = engine.inspect(again["id"])
    labels = {**document["Config"]["Labels"], LABEL_QUEUE: ADMITTED, LABEL_FROM: again["id"]}
    devices["DeviceRequests"][0]["DeviceIDs"] = ["0"]
    engine.remove(held[0], force=True)
    half = records.remake(engine, document, document["Name"].lstrip("/") + ADMIT_SUFFIX, labels, devices)
    copy_layer(core(ann), again["id"], half)
    engine.remove(again["id"], force=True)
    Desk(core(ann)).admit()
    assert engine.is_running(half)
    mine = {e["name"]: e for e in bob.json("ls", "--all")}["b2"]
    assert (mine["status"], mine["gpus"], mine["id"]) == ("running", [0], half)


@pytest.fixture
def two_gpus_desk(gpu_desk: GpuDesk) -> GpuDesk:
    from tests.support.nvml_scenarios import idle

    gpu_desk.install(idle(2))
    return gpu_desk
