"""Two looks at what runs in every container, each one /proc pass against the engine's way:

- who is logged in (ptdesk.core.access.sessions.scan, every listing) against one
  `docker exec CONTAINER ps -o user= -C sshd` per running container;
- which collaborator uids run anything (sessions.account_uids, the revocation backstop at every
  reconcile) against one `docker top` (the engine's ps) per running container.

    .venv/bin/python bench/sessions_scan.py [--rounds 20]

Needs the engine and at least one running container of any kind (it asks every running one).
Alternating rounds, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ptdesk.core.access import sessions
from ptdesk.core.access.accounts import UID_BASE, UID_LAST
from ptdesk.core.engine.client import Engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    engine = Engine.connect()
    ids = [c["Id"] for c in engine.api.containers(filters={"status": "running"})]
    if not ids:
        raise SystemExit("no running container to ask")
    collaborators = range(UID_BASE, UID_LAST + 1)
    times: dict[str, list[float]] = {"scan": [], "execs": [], "uids": [], "tops": []}
    for _ in range(args.rounds):
        for label, step in (("scan", lambda: sessions.scan(ids)),
                            ("execs", lambda: [engine.exec(cid, ["ps", "-o", "user=", "-C", "sshd"]) for cid in ids]),
                            ("uids", lambda: sessions.account_uids(ids, collaborators)),
                            ("tops", lambda: [engine.top_uids(cid) for cid in ids])):
            started = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - started)
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    m = {label: statistics.median(values) * 1000 for label, values in times.items()}
    print(f"{len(ids)} running containers, {processes} host processes, {args.rounds} rounds")
    print(f"who is logged in:      scan of /proc {m['scan']:.1f} ms   one exec per container {m['execs']:.1f} ms   "
          f"exec/scan {m['execs'] / m['scan']:.0f}x")
    print(f"collaborator uids:     scan of /proc {m['uids']:.1f} ms   one docker top per container {m['tops']:.1f} ms "
          f"top/scan {m['tops'] / m['uids']:.0f}x")


if __name__ == "__main__":
    main()
