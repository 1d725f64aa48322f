"""Who is logged in: one /proc pass (ptdesk.core.access.sessions.scan) against one docker exec per container.

    .venv/bin/python bench/sessions_scan.py [--rounds 20]

Needs the engine and at least one running container of any kind (it asks every running one).
The baseline is what the cheap path replaces: `docker exec CONTAINER ps -o user= -C sshd` for
each running container, alternating rounds with the scan so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ptdesk.core.access import sessions
from ptdesk.core.engine.client import Engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    engine = Engine.connect()
    ids = [c["Id"] for c in engine.api.containers(filters={"status": "running"})]
    if not ids:
        raise SystemExit("no running container to ask")
    scan, execs = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        sessions.scan(ids)
        scan.append(time.perf_counter() - started)
        started = time.perf_counter()
        for cid in ids:
            engine.exec(cid, ["ps", "-o", "user=", "-C", "sshd"])
        execs.append(time.perf_counter() - started)
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    s, e = statistics.median(scan), statistics.median(execs)
    print(f"{len(ids)} running containers, {processes} host processes, {args.rounds} rounds")
    print(f"scan of /proc: {s * 1000:.1f} ms   one exec per container: {e * 1000:.1f} ms   "
          f"exec/scan: {e / s:.0f}x")


if __name__ == "__main__":
    main()
