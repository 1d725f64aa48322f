#!/usr/bin/env python3
"""Several workstations: what `ptdesk ls` and a dashboard refresh cost, against baselines measured
in the same run, on a real second engine behind a real sshd (tests/support/remote_box.py; needs root).

1. CLI: `docker ps` (baseline) | `ptdesk ls --on local` | `ptdesk ls` over two workstations asked
   directly | the same answered by a resident `ptdesk serve`, alternating rounds.
   Target: two workstations <= 0.3 s warm.
2. Core (the dashboard's work per refresh: experiment list + GPU sample, then also the running
   rows' CPU/memory, of every workstation, in parallel): one workstation vs two.
3. The SSH transport: one engine request over the held SSH connection vs the same request on the
   engine's own socket, and the cost of a new connection (handshake + version).
4. Scale, simulated: 10 workstations (10 separate SSH connections, all to the second engine) and
   decoding 10 sampler lines of 8 GPUs each.

    sudo .venv/bin/python bench/workstations.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # ptdesk and tests.support

import docker  # noqa: E402

from ptdesk.commands.common import reconcile_quietly  # noqa: E402
from ptdesk.config import load_config  # noqa: E402
from ptdesk.core.admin.resident import ResidentServer  # noqa: E402
from ptdesk.core.engine import remote  # noqa: E402
from ptdesk.core.engine.client import Engine  # noqa: E402
from ptdesk.core.fleet import Fleet  # noqa: E402
from ptdesk.core.gpu import wire  # noqa: E402
from ptdesk.core.gpu.nvml import GpuSampler  # noqa: E402
from tests.support import nvml_scenarios  # noqa: E402
from tests.support.helpers import SAMPLER_IMAGE, TEST_IMAGE_ENV  # noqa: E402
from tests.support.remote_box import RemoteBox  # noqa: E402

PTDESK = str(ROOT / ".venv" / "bin" / "ptdesk")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(argv: list[str], env: dict[str, str], check: bool = True) -> None:
    proc = subprocess.run(argv, env=env, check=False, capture_output=True, text=True)
    if check and proc.returncode != 0:  # a failing command is fast: never time one
        raise SystemExit(f"{' '.join(argv[1:])} exited {proc.returncode}: {proc.stderr.strip()}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def cli_rounds(env: dict[str, str], config, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    got: dict[str, list[float]] = {"docker ps": [], "ls local (direct)": [], "ls 2 ws (direct)": [],
                                   "ls 2 ws (resident)": []}
    server = ResidentServer(config, reconcile_quietly, env)
    stop = threading.Event()
    direct = {**env, "PTDESK_RESIDENT": "off"}
    for i in range(rounds + 1):  # round 0 warms caches and connections, not counted
        got_round = {
            "docker ps": timed(lambda: run(["docker", "ps"], env)),  # the local engine: DOCKER_HOST unset
            "ls local (direct)": timed(lambda: run([PTDESK, "ls", "--on", "local"], direct)),
            "ls 2 ws (direct)": timed(lambda: run([PTDESK, "ls"], direct)),
        }
        if i == 0:
            threading.Thread(target=server.serve, args=(stop,), daemon=True).start()
            while not server.path.exists():
                time.sleep(0.01)
        got_round["ls 2 ws (resident)"] = timed(lambda: run([PTDESK, "ls"], env))
        if i:
            for key, value in got_round.items():
                got[key].append(value)
    stop.set()
    return {key: median(values) for key, values in got.items()}


def refresh_rounds(fleet: Fleet, names: list[str], rounds: int, stats: bool = False) -> float:
    def work(ws):  # type: ignore[no-untyped-def]
        # The dashboard's feeds: the list, a GPU sample and (`stats`) the running rows' CPU/memory
        # (cgroup files locally, the engine's one-shot stats on the remote; its own feed there).
        items = ws.list_experiments()
        figures = ws.container_stats([e.id for e in items if e.id and e.status == "running"]) if stats else None
        return items, ws.gpu_snapshot(), figures

    fleet.each(work, names=names)  # connect, start the sampler
    return median([timed(lambda: fleet.each(work, names=names)) for _ in range(rounds * 3)])


def transport(box: RemoteBox, config, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    entry = config.workstations["box"]
    over_ssh = remote.connect(config, entry)
    direct = Engine(docker.DockerClient(base_url=box.docker_host, version="1.41"))
    try:
        ssh = median([timed(lambda: over_ssh.list_managed(config.instance)) for _ in range(rounds * 5)])
        sock = median([timed(lambda: direct.list_managed(config.instance)) for _ in range(rounds * 5)])
    finally:
        over_ssh.close()
        direct.close()
    connect = median([timed(lambda: remote.connect(config, entry).close()) for _ in range(rounds)])
    return {"request over SSH": ssh, "request on the socket": sock, "new SSH connection": connect}


def scale(box: RemoteBox, home: Path, env: dict[str, str], rounds: int) -> dict[str, float]:
    tables = "".join(f'[workstations.s{i}]\nengine = "{box.engine_url}"\nidentity_file = "{box.client_key}"\n'
                     for i in range(10))
    (home / "config.toml").write_text((home / "config.toml").read_text() + tables)
    config = load_config(env)
    fleet = Fleet(config, [f"s{i}" for i in range(10)])
    try:
        fleet.each(lambda ws: ws.list_experiments())
        listing = median([timed(lambda: fleet.each(lambda ws: ws.list_experiments())) for _ in range(rounds)])
    finally:
        fleet.close()
    with nvml_scenarios.installed(nvml_scenarios.healthy(pids=tuple(range(1000, 1016)), gpus=8)), \
            GpuSampler(history=1) as sampler:
        line = wire.encode(sampler.sample())
    decode = median([timed(lambda: [wire.decode(line) for _ in range(10)]) for _ in range(rounds * 10)])
    return {"10 ws list (parallel)": listing, "decode 10 x 8-GPU lines": decode, "line bytes": float(len(line))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    box = RemoteBox().start()
    home = Path(tempfile.mkdtemp(prefix="ptdesk-bench-ws-"))
    # The images scripts/test builds (test tags), as the box was given them (tests.support.remote_box).
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": f"bench-ws-{os.getpid()}", **TEST_IMAGE_ENV}
    try:
        box.load_images(SAMPLER_IMAGE)
        run([PTDESK, "workstations", "add", "box", box.engine_url, "--identity", str(box.client_key), "--yes"], env)
        run([PTDESK, "new", "ssh", "--name", "local-1", "--cpus", "1"], env)
        run([PTDESK, "new", "ssh", "--on", "box", "--name", "box-1", "--cpus", "1"], env)
        config = load_config(env)
        cli = cli_rounds(env, config, rounds)
        base = cli["docker ps"]
        print(f"CLI, median of {rounds} alternating rounds (one experiment per workstation):")
        for key, value in cli.items():
            print(f"  {key:<22} {value:6.3f} s   {value / base:5.1f}x docker ps")
        verdict = "meets" if cli["ls 2 ws (resident)"] <= 0.3 else "MISSES"
        print(f"  target: two workstations <= 0.3 s warm: resident {verdict}")
        fleet = Fleet(config)
        try:
            for stats in (False, True):
                one = refresh_rounds(fleet, ["local"], rounds, stats)
                two = refresh_rounds(fleet, ["local", "box"], rounds, stats)
                what = "list + GPU sample + CPU/memory" if stats else "list + GPU sample"
                print(f"Core refresh ({what}, parallel): 1 ws {one * 1000:.1f} ms, 2 ws {two * 1000:.1f} ms "
                      f"({two / one:.2f}x)")
        finally:
            fleet.close()
        for key, value in transport(box, config, rounds).items():
            print(f"Transport: {key:<24} {value * 1000:7.1f} ms")
        for key, value in scale(box, home, env, rounds).items():
            print(f"Scale: {key:<26} " + (f"{value:7.0f}" if key == "line bytes" else f"{value * 1000:7.1f} ms"))
    finally:
        run([PTDESK, "rm", "local-1", "--force"], env, check=False)
        box.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
