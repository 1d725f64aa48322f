"""Cost of environment truth, each figure against a baseline measured in the same run (alternating).

1. build: ptdesk's recording step after a build (read /etc/ptdesk/environment.json from a created,
   never started container, then the label-only build) against the cheapest build there is, a
   fully cached rebuild of the same ssh context; plus the probe inside an image
   (`docker run IMAGE env-probe --build`, the Dockerfile's extra step) against `docker run IMAGE true`.
2. env: `Workstation.environment(NAME)` (inspect, recorded file, probe exec'd live, diff) against
   the naive live read `docker exec NAME python3 -m pip list --format=json`.
3. listing: `list_experiments()` with the environment column against the same listing without it.

    .venv/bin/python bench/environment.py [--rounds 7] [--experiments 3]

Needs the engine, the base image and the jupyter image under test (PTDESK_JUPYTER_IMAGE, default
ptdesk/jupyter:latest). Everything it makes carries a unique instance/tag and is removed at the end.
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
from collections.abc import Callable
from pathlib import Path

from ptdesk.config import load_config
from ptdesk.core.access.ownership import instance_containers
from ptdesk.core.environment import images, recorded
from ptdesk.core.experiments import listing
from ptdesk.core.workstation import Workstation

BASE = "ptdesk-test/debian-base:bookworm"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(rounds: int, a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Median seconds of a and of b, run in alternating rounds (one warm-up each, untimed)."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(rounds):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return statistics.median(times_a), statistics.median(times_b)


def report(what: str, ours: float, base: float, base_name: str) -> None:
    print(f"{what:<44} {ours * 1000:9.1f} ms   {base_name:<34} {base * 1000:9.1f} ms   ratio {ours / base:6.2f}x")


def plain_listing(ws: Workstation) -> list:
    """list_experiments without the environment column (what the listing cost before it)."""
    containers = instance_containers(ws)
    records = {r.name: r for r in ws.store.experiments()}
    names = sorted(set(containers) | set(records), key=lambda n: (records[n].created if n in records else 0, n))
    return [listing._experiment(ws, records.get(n), containers.get(n)) for n in names if n]


def bench_build(ws: Workstation, rounds: int) -> None:
    engine, tag = ws.engine, f"ptdesk-bench/ssh:{uuid.uuid4().hex[:8]}"
    files = images.source_files("ssh")
    context = images.build_context(files, images.CaBundle(path=None, source="none"))
    base_info = engine.image_info(BASE)
    try:
        cached = alternate(rounds, lambda: engine.build(context, tag, {"BASE": BASE}, lambda _l: None),
                           lambda: recorded.record_build(engine, tag, base_info, lambda _l: None))
        report("build: recording step (read + labels)", cached[1], cached[0], "fully cached rebuild")
        run = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "", tag]
        probe = alternate(rounds, lambda: subprocess.run([*run, "/usr/local/lib/ptdesk/env-probe", "--build"],
                                                         capture_output=True, check=True),
                          lambda: subprocess.run([*run, "true"], capture_output=True, check=True))
        report("build: probe in the ssh image (no Python)", probe[0], probe[1], "docker run IMAGE true")
        jupyter = images.image_tag(ws.config, 'jupyter')
        run = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "", jupyter]
        probe = alternate(rounds, lambda: subprocess.run([*run, "/usr/local/lib/ptdesk/env-probe", "--build"],
                                                         capture_output=True, check=True),
                          lambda: subprocess.run([*run, "true"], capture_output=True, check=True))
        report("build: probe in the jupyter image", probe[0], probe[1], "docker run IMAGE true")
    finally:
        if engine.image_exists(tag):
            engine.api.remove_image(tag, noprune=True)


def bench_env_and_listing(ws: Workstation, rounds: int, count: int) -> None:
    names = []
    for n in range(count):
        spec = ws.make_spec("jupyter", name=f"bench-env-{n}", owner="bench")
        names.append(ws.launch(spec).experiment)
    first = names[0]
    user = f"{ws.config.uid}:{ws.config.gid}"
    pip_list = ["docker", "exec", "-u", user, first.id, "python3", "-m", "pip", "list", "--format=json",
                "--disable-pip-version-check"]
    env = alternate(rounds, lambda: ws.environment(first.name),
                    lambda: subprocess.run(pip_list, capture_output=True, check=True))
    report("env NAME (Workstation.environment)", env[0], env[1], "docker exec pip list --format=json")
    listed = alternate(rounds, lambda: ws.list_experiments(), lambda: plain_listing(ws))
    report(f"listing, {count} experiments, with the column", listed[0], listed[1], "the same listing without it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--experiments", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptdesk-bench-env-") as root:
        instance = f"bench-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PTDESK_HOME": str(Path(root) / "home"), "PTDESK_INSTANCE": instance}
        env.pop("PTDESK_BIND_ADDRESS", None)
        ws = Workstation(load_config(env))
        try:
            tag = images.image_tag(ws.config, "jupyter")
            print(f"engine {ws.engine_version()}, {tag}, {args.rounds} rounds, medians")
            bench_build(ws, args.rounds)
            bench_env_and_listing(ws, args.rounds, args.experiments)
        finally:
            for container in ws.engine.api.containers(all=True, filters={"label": f"ptdesk.instance={instance}"}):
                ws.engine.remove(container["Id"], force=True)
            ws.close()


if __name__ == "__main__":
    sys.exit(main())
