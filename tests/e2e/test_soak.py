"""Soak: 100 launch/remove cycles with a watcher running, then nothing may be left behind: no
container, no record (port, GPUs), no key or token file, no open file descriptor.
Slow: run with `pytest -m slow tests/e2e/test_soak.py -s` (prints per-cycle time and fd counts).
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time

import pytest

from ptdesk.config import load_config
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments import operations
from ptdesk.core.experiments.lifecycle import EventWatcher
from ptdesk.core.experiments.spec import make_spec
from ptdesk.core.workstation import Workstation
from tests.support.helpers import SSH_IMAGE, require_image

CYCLES = 100
WARMUP = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_hundred_launch_remove_cycles_leave_nothing_behind(ptdesk_env: dict[str, str], engine: Engine) -> None:
    require_image(engine, SSH_IMAGE)
    ws = Workstation(load_config(ptdesk_env))
    # Warm up so lazily made things (store, owner key, the engine client's bounded connection pool,
    # which grows over the first few cycles and then stays put) are not counted as leaks.
    for _ in range(WARMUP):
        ws.launch(make_spec(ws, "ssh", name="warmup"))
        operations.remove(ws, "warmup", force=True)
    watcher_desk = Workstation(ws.config)
    stop = threading.Event()
    watcher = threading.Thread(target=EventWatcher(watcher_desk).run, args=(stop,), daemon=True)
    watcher.start()
    gc.collect()
    fds_before = open_fds()
    durations: list[float] = []
    try:
        for i in range(CYCLES):
            started = time.monotonic()
            launched = ws.launch(make_spec(ws, "ssh", name=f"soak-{i % 3}")).experiment
            assert launched.status == "running"
            operations.remove(ws, launched.name, force=True)
            durations.append(time.monotonic() - started)
    finally:
        stop.set()
        watcher.join(timeout=5)
        watcher_desk.close()
    assert not watcher.is_alive()
    gc.collect()
    fds_after = open_fds()
    print(f"\nsoak: {CYCLES} ssh launch+remove cycles on {os.cpu_count()} CPUs: "
          f"mean {statistics.mean(durations):.2f} s, median {statistics.median(durations):.2f} s, "
          f"max {max(durations):.2f} s per cycle; open fds before {fds_before}, after {fds_after}")
    assert engine.list_managed(ws.config.instance) == []
    assert ws.store.experiments() == []
    assert ws.store.held_gpus() == {}
    leftovers = list((ws.config.home / "experiments").glob("*"))
    assert leftovers == [], leftovers
    assert fds_after <= fds_before, f"file descriptors leaked: {fds_before} -> {fds_after}"
    ws.close()
