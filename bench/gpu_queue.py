"""GPU sharing: how fast a queued experiment is reachable once its GPU frees, and what the queue
and reservations cost one dashboard refresh — each against a baseline measured in the same run.

1. Freed → reachable, N alternating rounds on a GPU-capable test engine (scripts/second-engine
   with its no-op NVIDIA hook; NVML replaced by a scenario of 2 idle GPUs, as in the tests):
   (a) queued: an SSH experiment waits in the queue for GPU 1; the holder is removed; timed from
       the removal through one admission round (what `ptdesk watch` runs every 2 s: add 0–2 s of
       polling, 1 s on average), the owner's reconcile taking the container over, until the
       owner's key logs in with the host key pinned;
   (b) plain: `launch()` of the same experiment on the free GPU, until the same login works.
2. Dashboard refresh: `list_experiments()` over K running experiments with Q queued requests and
   R reservations, against the same listing with no queue and no reservation.

    .venv/bin/python bench/gpu_queue.py [--rounds 3] [--queued 5] [--reservations 3]

Needs root (the test engine), the main engine's ptdesk/ssh image (or the one PTDESK_SSH_IMAGE names,
which ptdesk then launches too). Everything it makes is removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pynvml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "core"))
sys.path.insert(0, str(ROOT))
from ptdesk.config import load_config  # noqa: E402
from ptdesk.core.gpu_desk import GpuDesk  # noqa: E402
from ptdesk.core.kinds import get_kind  # noqa: E402
from ptdesk.core.workstation import Workstation  # noqa: E402
from tests.support import nvml_scenarios  # noqa: E402

SCRIPT = str(ROOT / "scripts" / "second-engine")
IMAGE = os.environ.get("PTDESK_SSH_IMAGE", "ptdesk/ssh:latest")  # a test box's build: ptdesk-test/ssh:latest


def start_engine(folder: str, bridge: str) -> str:
    env = {**os.environ, "PTDESK_ENGINE_GPU_HOOK": "1"}
    out = subprocess.run([SCRIPT, "start", folder, bridge, "172.31.211.1/24"], capture_output=True, text=True,
                         timeout=120, env=env, check=True).stdout.strip().splitlines()[-1]
    save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", out, "load", "-q"], stdin=save.stdout, check=True, capture_output=True)
    save.wait()
    return out


def workstation(home: Path, instance: str, user: str) -> Workstation:
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": instance, "USER": user, "LOGNAME": user}
    env.pop("SUDO_USER", None)
    return Workstation(load_config(env))


def reachable(ws: Workstation, name: str) -> None:
    """The owner's key logs in with the host key pinned (what `launch` proves before it returns)."""
    record = ws.store.experiment(name)
    assert record is not None and record.port, f"{name} has no port yet"
    get_kind("ssh").wait_ready(ws.config, record, ws.config.connect_host, record.port, 60.0, lambda: True)


def queued_round(ws: Workstation, n: int) -> float:
    holder = ws.launch(ws.make_spec("ssh", name=f"hold-{n}", gpus="1", cpus=1)).experiment
    ws.launch(ws.make_spec("ssh", name=f"queued-{n}", gpus="1", cpus=1, queue=True))
    started = time.perf_counter()
    ws.engine.remove(holder.id, force=True)
    admitted = GpuDesk(ws).admit()
    ws.reconcile()  # the owner's ptdesk takes the admitted container over
    reachable(ws, f"queued-{n}")
    elapsed = time.perf_counter() - started
    assert admitted == [f"queued-{n}"], admitted
    ws.remove(f"queued-{n}", force=True)
    return elapsed


def plain_round(ws: Workstation, n: int) -> float:
    started = time.perf_counter()
    ws.launch(ws.make_spec("ssh", name=f"plain-{n}", gpus="1", cpus=1))
    elapsed = time.perf_counter() - started
    ws.remove(f"plain-{n}", force=True)
    return elapsed


def refresh(ws: Workstation, times: int = 20) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        ws.list_experiments()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queued", type=int, default=5)
    parser.add_argument("--reservations", type=int, default=3)
    args = parser.parse_args()
    for name, fn in nvml_scenarios.idle(2).functions().items():
        setattr(pynvml, name, fn)
    folder = tempfile.mkdtemp(prefix="ptdesk-bench-gpu-", dir="/tmp")
    bridge = f"ptb{uuid.uuid4().hex[:8]}"
    host = start_engine(folder, bridge)
    os.environ["DOCKER_HOST"] = host
    home = Path(tempfile.mkdtemp(prefix="ptdesk-bench-home-"))
    ws = workstation(home, f"b-{uuid.uuid4().hex[:8]}", "ann")
    try:
        queued, plain = [], []
        for n in range(args.rounds):
            queued.append(queued_round(ws, n))
            plain.append(plain_round(ws, n))
            print(f"round {n}: queued→reachable {queued[-1]:.2f} s, plain launch {plain[-1]:.2f} s", flush=True)
        q, p = statistics.median(queued), statistics.median(plain)
        print(f"GPU freed → queued experiment reachable: median {q:.2f} s (+0–2 s of the service's polling); "
              f"plain launch {p:.2f} s; ratio {q / p:.2f}×")
        for i in range(4):  # running experiments the listing shows, none on GPU 1 (kept for the queue)
            ws.launch(ws.make_spec("ssh", name=f"run-{i}", gpus="0" if i == 0 else "none", cpus=1))
        ws.launch(ws.make_spec("ssh", name="blocker", gpus="1", cpus=1))
        base = refresh(ws)
        bob = workstation(home / "bob", ws.config.instance, "bob")
        for i in range(args.queued):
            bob.launch(bob.make_spec("ssh", name=f"wait-{i}", owner="bob", gpus="1", cpus=1, queue=True))
        for i in range(args.reservations):  # on later days: they do not change what the queue waits for
            GpuDesk(ws).reserve("0", time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 86400 * (i + 1))),
                                "1h")
        shared = refresh(ws)
        print(f"Dashboard refresh (list) with {args.queued} queued + {args.reservations} reservations: "
              f"{shared * 1000:.1f} ms; without: {base * 1000:.1f} ms; ratio {shared / base:.2f}×")
    finally:
        ws.close()
        subprocess.run([SCRIPT, "stop", folder, bridge], capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
