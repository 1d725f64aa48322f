"""How long ptdesk takes to answer before it does any work: --help, and `ls` without a resident.

    .venv/bin/python bench/startup.py [--rounds 10]

Paired with the docker CLI in the same run (alternating rounds, so a busy machine slows both
alike): `ptdesk --help` and `ptdesk new ssh --help` against `docker --help`, `ptdesk ls --on local`
(no `ptdesk serve` running, a fresh PTDESK_HOME) against `docker ps`. Prints medians and ratios.
Needs the engine for the `ls` pair. ptdesk's modules are compiled first (as an install does), so
an environment with PYTHONDONTWRITEBYTECODE does not time Python compiling them every run.
`--before DIR` also times another checkout's ptdesk (DIR on PYTHONPATH) in the same rounds.
`--running N` then starts N SSH experiments in that home and times the `ls` pair again: every
reconcile looks at what runs in each of them (PTDESK_SSH_IMAGE names the image, e.g. the test one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import compile_checkouts  # bench/, this script's own folder

ROOT = Path(__file__).resolve().parent.parent
PTDESK = str(Path(sys.executable).parent / "ptdesk")

PAIRS = {
    "ptdesk --help": ([PTDESK, "--help"], ["docker", "--help"]),
    "ptdesk new ssh --help": ([PTDESK, "new", "ssh", "--help"], ["docker", "--help"]),
    "ptdesk ls --on local": ([PTDESK, "ls", "--on", "local"], ["docker", "ps"]),
}


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def time_pair(label: str, ours: list[str], theirs: list[str], envs: dict[str, dict[str, str]],
              env: dict[str, str], rounds: int) -> None:
    """Alternating rounds of `ours` under each checkout and `theirs` (docker's); one line of medians."""
    times: dict[str, list[float]] = {name: [] for name in (*envs, "baseline")}
    for _ in range(rounds):
        for name, each in envs.items():
            times[name].append(timed(ours, each))
        times["baseline"].append(timed(theirs, env))
    median = {name: statistics.median(values) for name, values in times.items()}
    mine, base = median["ptdesk"], median["baseline"]
    if "before" in median:
        was = median["before"]
        print(f"{label:<32} {mine:8.3f}s {was:8.3f}s {base:8.3f}s {mine / base:6.1f}x {was / base:6.1f}x   "
              f"{' '.join(theirs)}")
    else:
        print(f"{label:<32} {mine:8.3f}s {base:8.3f}s {mine / base:6.1f}x   {' '.join(theirs)}")


def launch_running(count: int, env: dict[str, str]) -> list[str]:
    """`count` SSH experiments started through the CLI (untimed): what a listing looks at on a box in use."""
    names = [f"busy-{n}" for n in range(count)]
    for name in names:
        proc = subprocess.run([PTDESK, "new", "ssh", "--name", name, "--json"], env=env, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"ptdesk new ssh failed: {proc.stderr.strip()}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--before", metavar="DIR", help="another checkout's root, timed in the same rounds")
    parser.add_argument("--running", type=int, default=0, metavar="N",
                        help="then `ls` again with N running SSH experiments (needs the ssh image)")
    args = parser.parse_args()
    codes = {"ptdesk": str(ROOT), **({"before": args.before} if args.before else {})}
    compile_checkouts(*codes.values())
    with tempfile.TemporaryDirectory(prefix="ptdesk-bench-startup-") as home:
        env = {**os.environ, "PTDESK_HOME": home, "PTDESK_INSTANCE": "bench-startup"}
        envs = {label: {**env, "PYTHONPATH": code} for label, code in codes.items()}
        for ours, theirs in PAIRS.values():  # warm the page cache once
            for each in envs.values():
                timed(ours, each)
            timed(theirs, env)
        print(f"{'command':<32} {'ptdesk':>9} {'before':>9} {'baseline':>9} {'ratio':>7} {'before':>7}   baseline"
              if args.before else f"{'command':<32} {'ptdesk':>9} {'baseline':>9} {'ratio':>7}   baseline")
        for label, (ours, theirs) in PAIRS.items():
            time_pair(label, ours, theirs, envs, env, args.rounds)
        if args.running:
            names: list[str] = []
            try:
                names = launch_running(args.running, env)
                ours, theirs = PAIRS["ptdesk ls --on local"]
                time_pair(f"  ... {args.running} SSH experiments running", ours, theirs, envs, env, args.rounds)
            finally:
                for name in names:
                    subprocess.run([PTDESK, "rm", "--force", name], env=env, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
