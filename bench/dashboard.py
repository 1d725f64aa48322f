#!/usr/bin/env python3
"""What the dashboard costs, on the same containers, with baselines measured in the same run.

1. One full refresh (experiment list + per-container CPU/memory from cgroup files via
   ptdesk.core.host.cgroups + one GPU sample with attribution) for 10 and for 50 running containers,
   against `docker stats --no-stream` on the same containers.
   Targets: >= 20x faster at 50; refresh(50)/refresh(10) at most ~5 (linear).
2. The dashboard's own CPU use while idle with 20 containers, for 30 s: the real `ptdesk` process
   in a tmux terminal, from /proc/<pid>/stat (utime+stime). Target: < 3 % of one core.
3. Key-press delay while a container writes ~20 000 log lines/s into the followed log pane
   (in-process app, Pilot presses a key, time until the screen it opens is up), plus RSS before/after.
   Target: < 100 ms, RSS bounded.

Containers are tiny `sleep` ones from ptdesk-test/debian-base:bookworm, labelled as managed with a
unique instance, all removed at the end. Without a GPU the GPU sample runs on the NVML scenario
fixtures of the tests (said in the output).

    .venv/bin/python bench/dashboard.py [--idle-seconds 30] [--flood-seconds 15]
    .venv/bin/python bench/dashboard.py --startup-rounds 13 [--before DIR] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bytecode import compile_checkouts  # noqa: E402  (bench/, this script's own folder)

from ptdesk.config import load_config  # noqa: E402
from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER  # noqa: E402
from ptdesk.core.engine.client import Engine  # noqa: E402
from ptdesk.core.workstation import Workstation  # noqa: E402
from ptdesk.tui import feeds  # noqa: E402
from tests.support import nvml_scenarios  # noqa: E402

BASE = "ptdesk-test/debian-base:bookworm"
FLOOD = ("while :; do seq -f 'step %g loss 0.1234 lr 3e-4 throughput 1234.5 samples/s' 1 2000; "
         "sleep 0.1; done")


def start_container(engine: Engine, instance: str, name: str, script: str = "sleep infinity") -> str:
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: instance, LABEL_KIND: "ssh", LABEL_OWNER: "bench",
              LABEL_NAME: name}
    cid = engine.create(name=f"ptdesk-{instance}-{name}", image=BASE, labels=labels, command=["sh", "-c", script],
                        host_config={"init": True, "mem_limit": "64m"})
    engine.start(cid)
    return cid


def median_time(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def docker_stats(ids: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.ID}} {{.CPUPerc}} {{.MemUsage}}", *ids],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def refresh_costs(ws: Workstation, ids: list[str], runs: int) -> tuple[float, float]:
    def full_refresh() -> None:
        """One dashboard tick, with the calls its feeds make: list, cgroup stats, GPU sample."""
        items = ws.list_experiments(all=True)
        ws.container_stats(e.id for e in items if e.id and e.status == "running")
        feeds.sample_gpus(ws, True)

    ours = median_time(full_refresh, runs)
    baseline = statistics.median(docker_stats(ids) for _ in range(3))
    return ours, baseline


def tmux(*args: str, socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                          check=True).stdout


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks (all threads)


def idle_cpu(env: dict[str, str], seconds: float) -> tuple[float, float, float, float]:
    """(first paint s, all containers listed s, memory figures shown s, percent of one core while
    idle) of the real `ptdesk`."""
    socket = f"ptdesk-bench-{uuid.uuid4().hex[:6]}"
    exe = Path(sys.executable).parent / "ptdesk"
    command = (f"exec env -u COLUMNS -u LINES PTDESK_HOME={env['PTDESK_HOME']} "
               f"PTDESK_INSTANCE={env['PTDESK_INSTANCE']} TERM=xterm-256color {exe}")
    started = time.monotonic()
    tmux("new-session", "-d", "-s", "bench", "-x", "160", "-y", "48", command, socket=socket)
    try:
        pid = int(tmux("display-message", "-p", "-t", "bench", "#{pane_pid}", socket=socket).strip())
        first_paint = listed = stats = 0.0
        while not (listed and stats):
            text = tmux("capture-pane", "-p", "-t", "bench", socket=socket)
            if not first_paint and "Experiments" in text:
                first_paint = time.monotonic() - started
            if not listed and "bench-19" in text:
                listed = time.monotonic() - started
            # The first row's Memory cell holds a size (KiB/MiB) instead of N/A: the stats arrived.
            if not stats and any("bench-00 " in line and "iB" in line for line in text.splitlines()):
                stats = time.monotonic() - started
            if time.monotonic() - started > 30:
                raise RuntimeError("the dashboard did not show the containers")
            time.sleep(0.02)
        time.sleep(3)  # let the first stats/GPU samples settle
        ticks0, t0 = cpu_ticks(pid), time.monotonic()
        time.sleep(seconds)
        ticks1, t1 = cpu_ticks(pid), time.monotonic()
        return first_paint, listed, stats, (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


# The floor: a bare Textual app that paints the same word, in the same terminal (Python + Textual).
BARE_TEXTUAL = ("from textual.app import App\nfrom textual.widgets import Static\n"
                "class Bare(App):\n    def compose(self):\n        yield Static('Experiments')\nBare().run()\n")


def startup_times(env: dict[str, str], code: str | None = None, bare: bool = False) -> tuple[float, float]:
    """(first paint s, all 20 containers listed s) of the real `ptdesk` in a fresh tmux terminal;
    `code`: run that checkout's ptdesk instead (PYTHONPATH); `bare`: the bare Textual app (listed 0)."""
    socket = f"ptdesk-bench-{uuid.uuid4().hex[:6]}"
    exe = f"{sys.executable} -c {shlex.quote(BARE_TEXTUAL)}" if bare else str(Path(sys.executable).parent / "ptdesk")
    command = (f"exec env -u COLUMNS -u LINES PYTHONPATH={code or ROOT} PTDESK_HOME={env['PTDESK_HOME']} "
               f"PTDESK_INSTANCE={env['PTDESK_INSTANCE']} TERM=xterm-256color {exe}")
    started = time.monotonic()
    tmux("new-session", "-d", "-s", "bench", "-x", "160", "-y", "48", command, socket=socket)
    try:
        first_paint = listed = 0.0
        while not (first_paint and (listed or bare)):
            text = tmux("capture-pane", "-p", "-t", "bench", socket=socket)
            if not first_paint and "Experiments" in text:
                first_paint = time.monotonic() - started
            if not listed and "bench-19" in text:
                listed = time.monotonic() - started
            if time.monotonic() - started > 30:
                raise RuntimeError("the dashboard did not show the containers")
            time.sleep(0.005)
        return first_paint, listed
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


# Instructions to the first frame: the same start under callgrind, which counts what the CPU executes
# (on a shared, busy box a wall clock mostly measures the neighbours). It exits at the first write
# of a frame to the terminal. (-P: the checkout named, not the current folder's.)
FIRST_FRAME_EXIT = ("import os, sys, textual.app as t\nshow = t.App._display\n"
                    "def first(app, screen, renderable):\n    show(app, screen, renderable)\n"
                    "    if renderable is not None:\n        os._exit(0)\n"
                    "t.App._display = first\n")
PTDESK_MAIN = "sys.modules.setdefault('invoke', None)\nfrom ptdesk.cli import main\nmain([])\n"


def first_frame_instructions(env: dict[str, str], code: str | None = None, bare: bool = False) -> float:
    """Instructions (G) from the interpreter's start to the first frame, under callgrind, in tmux."""
    out = Path(tempfile.mkdtemp(prefix="ptdesk-callgrind-")) / "out"
    script = FIRST_FRAME_EXIT + (BARE_TEXTUAL if bare else PTDESK_MAIN)
    socket = f"ptdesk-bench-{uuid.uuid4().hex[:6]}"
    command = (f"exec env -u COLUMNS -u LINES PYTHONHASHSEED=0 PYTHONPATH={code or ROOT} "
               f"PTDESK_HOME={env['PTDESK_HOME']} PTDESK_INSTANCE={env['PTDESK_INSTANCE']} TERM=xterm-256color "
               f"valgrind --tool=callgrind --callgrind-out-file={out} {sys.executable} -P -c {shlex.quote(script)}")
    tmux("new-session", "-d", "-s", "bench", "-x", "160", "-y", "48", command, socket=socket)
    try:
        deadline = time.monotonic() + 600
        while subprocess.run(["tmux", "-L", socket, "has-session"], capture_output=True).returncode == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("callgrind did not finish in 10 minutes")
            time.sleep(0.5)
        summary = next(line for line in out.read_text().splitlines() if line.startswith("summary:"))
        return int(summary.split()[1]) / 1e9
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        shutil.rmtree(out.parent, ignore_errors=True)


def instruction_counts(env: dict[str, str], before: str | None) -> None:
    floor = first_frame_instructions(env, bare=True)
    print(f"   {'bare Textual app':<17} {floor:.3f} G instructions to the first frame")
    for label, code in (("ptdesk", None), ("ptdesk before", before)):
        if label == "ptdesk" or code:
            count = first_frame_instructions(env, code)
            print(f"   {label:<17} {count:.3f} G ({count / floor:.2f}x the bare app; its own share "
                  f"{count - floor:.3f} G)")


def startup_rounds(env: dict[str, str], rounds: int, before: str | None) -> None:
    """Alternating rounds: the bare Textual app, this ptdesk, and (--before) another checkout's."""
    compile_checkouts(ROOT, before)  # both start from their bytecode, as an installed ptdesk does
    series: dict[str, list[tuple[float, float]]] = {"bare Textual app": [], "ptdesk": []}
    if before:
        series["ptdesk before"] = []
    for _ in range(rounds):
        series["bare Textual app"].append(startup_times(env, bare=True))
        series["ptdesk"].append(startup_times(env))
        if before:
            series["ptdesk before"].append(startup_times(env, before))
    floor = statistics.median(p for p, _ in series["bare Textual app"])
    for label, times in series.items():
        paint, listed = statistics.median(p for p, _ in times), statistics.median(row for _, row in times)
        rows = f", 20 rows listed {listed:.3f} s" if listed else ""
        print(f"   {label:<17} median first paint {paint:.3f} s ({paint / floor:.2f}x the bare app){rows} "
              f"[paint {min(p for p, _ in times):.3f}-{max(p for p, _ in times):.3f} s]")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def key_delay(ws: Workstation, follow: str, seconds: float) -> tuple[list[float], float, float, int]:
    from textual import events

    from ptdesk.tui.app import PtdeskApp
    from ptdesk.tui.screens.help import Help
    from ptdesk.tui.widgets.log_pane import LogPane

    app = PtdeskApp(ws)
    delays: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 30
        while not app.main.listed:
            await pilot.pause(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("no list")
        row = next(e for e in app.main.experiments if e.name == follow)
        app.main.table.move_cursor(row=app.main.table.get_row_index(row.id))
        pane = app.query_one(LogPane)
        while pane.container != row.id or pane.stream is None:
            await pilot.pause(0.05)
        if follow == "flood":
            while len(pane.lines) < 1000:
                await pilot.pause(0.05)
        rss_before = rss_mib()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            # The key goes into the app's queue like a terminal key; the delay is until the screen it
            # opens is up (Pilot's own wait-for-idle is not part of what a person feels).
            start = time.perf_counter()
            app.post_message(events.Key("question_mark", "?"))
            while not isinstance(app.screen, Help):
                await asyncio.sleep(0.001)
            delays.append(time.perf_counter() - start)
            await pilot.press("escape")
            while isinstance(app.screen, Help):
                await asyncio.sleep(0.001)
            await pilot.pause(0.2)
        rss_after = rss_mib()
        skipped = pane.skipped
    return delays, rss_before, rss_after, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--startup-rounds", type=int, default=0,
                        help="Only the dashboard's start-up with 20 containers, this many alternating rounds.")
    parser.add_argument("--before", metavar="DIR", help="With --startup-rounds: also another checkout's ptdesk "
                        "(its root, as PYTHONPATH), in the same rounds.")
    parser.add_argument("--instructions", action="store_true", help="With --startup-rounds: also count the "
                        "CPU instructions to the first frame under callgrind (valgrind): a busy box leaves them alone.")
    args = parser.parse_args()

    # Reconciliation warns about the bench's containers (not adoptable): not what is measured here.
    logging.disable(logging.WARNING)
    engine = Engine.connect()
    if not engine.image_exists(BASE):
        print(f"{BASE} is missing: run scripts/test first.", file=sys.stderr)
        return 2
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.mkdtemp(prefix="ptdesk-bench-"))
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": instance}
    ws = Workstation(load_config(env))
    scenario = nvml_scenarios.healthy(pids=(os.getpid(),), gpus=2)
    real_nvml = ws.gpus.sample().available
    ids: list[str] = []
    try:
        with nvml_scenarios.installed(scenario) if not real_nvml else contextlib.nullcontext():
            if not real_nvml:
                ws.gpus.close()
                ws.__dict__.pop("gpus", None)
            print(f"machine: {os.cpu_count()} cores; GPU sample: "
                  f"{'real NVML' if real_nvml else 'NVML scenario fixtures (no GPU here)'}")
            if args.startup_rounds:
                while len(ids) < 20:
                    ids.append(start_container(engine, instance, f"bench-{len(ids):02d}"))
                print(f"\ndashboard start-up in tmux with 20 containers, {args.startup_rounds} alternating rounds")
                startup_rounds(env, args.startup_rounds, args.before)
                if args.instructions:
                    print("\ninstructions to the first frame (valgrind --tool=callgrind; one start each)")
                    instruction_counts(env, args.before)
                return 0
            print("\n1. one full refresh (list + cgroup CPU/memory + GPU sample) vs docker stats --no-stream")
            results = {}
            for count in (10, 50):
                while len(ids) < count:
                    ids.append(start_container(engine, instance, f"bench-{len(ids):02d}"))
                ours, baseline = refresh_costs(ws, ids, args.runs)
                results[count] = ours
                print(f"   {count:>2} containers: refresh {ours * 1000:7.1f} ms   "
                      f"docker stats {baseline * 1000:7.0f} ms   ratio {baseline / ours:6.1f}x faster")
            print(f"   growth 10 -> 50 containers: x{results[50] / results[10]:.2f} (linear would be x5.0)")

            print(f"\n2. idle CPU of the real `ptdesk` in tmux with 20 containers, {args.idle_seconds:.0f} s")
            for cid in ids[20:]:
                engine.remove(cid, force=True)
            del ids[20:]
            if shutil.which("tmux"):
                first_paint, listed, stats, percent = idle_cpu(env, args.idle_seconds)
                print(f"   start-up: first paint {first_paint:.2f} s, 20 containers listed {listed:.2f} s, "
                      f"their memory shown {stats:.2f} s "
                      "(target: first paint < 1 s)")
                print(f"   {percent:.2f} % of one core while idle (target < 3 %)")
            else:
                print("   skipped: tmux is not installed")

            print(f"\n3. key-press delay while one container writes ~20 000 lines/s ({args.flood_seconds:.0f} s)")
            quiet, _, _, _ = asyncio.run(key_delay(ws, "bench-00", args.flood_seconds))
            ids.append(start_container(engine, instance, "flood", FLOOD))
            delays, before, after, skipped = asyncio.run(key_delay(ws, "flood", args.flood_seconds))
            for label, values in (("quiet log (baseline)", quiet), ("flooded log", delays)):
                values.sort()
                print(f"   {label:<21} {len(values)} presses: median {statistics.median(values) * 1000:6.1f} ms, "
                      f"p90 {values[int(len(values) * 0.9)] * 1000:6.1f} ms, max {values[-1] * 1000:6.1f} ms")
            print(f"   flood/quiet median: x{statistics.median(delays) / statistics.median(quiet):.1f} "
                  "(target: flooded < 100 ms)")
            print(f"   RSS {before:.0f} MiB -> {after:.0f} MiB over the flood; {skipped} lines skipped by the "
                  "bounded pane")
    finally:
        for cid in ids:
            engine.remove(cid, force=True)
        ws.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
