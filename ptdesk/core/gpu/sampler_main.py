"""The program inside a workstation's GPU sampler container (images/sampler).

It samples NVML once a second with ptdesk's own sampler, names each GPU process's container from
the host's /proc (the container runs in the host PID namespace for exactly this: NVML reports host
PIDs, and only the host's /proc/<pid>/cgroup says which container a PID belongs to), and writes one
JSON line per sample on stdout. It exits as soon as its stdin closes: ptdesk holds stdin open through
its attach connection, so when the last reader goes away (or its SSH connection dies) the sampler
ends and the engine removes it (auto-remove). It never writes anywhere but stdout.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ptdesk.core.gpu import procmap, wire
from ptdesk.core.gpu.nvml import GpuSampler

PROC = Path("/proc")


def lines(sampler: GpuSampler, stop: threading.Event, interval: float, proc_root: Path = PROC) -> Iterator[str]:
    """Encoded, container-attributed samples until `stop` is set (names come from ptdesk's side)."""
    while not stop.is_set():
        snapshot = procmap.attribute(sampler.sample(), None, "", store=None, proc_root=proc_root)
        yield wire.encode(snapshot)
        stop.wait(interval)


def _stop_on_eof(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass  # nothing is ever sent: stdin exists only to say "someone is still watching"
    finally:
        stop.set()


def main() -> int:
    interval = float(os.environ.get("PTDESK_SAMPLER_INTERVAL", "1"))
    stop = threading.Event()
    threading.Thread(target=_stop_on_eof, args=(stop,), daemon=True).start()
    with GpuSampler(history=1) as sampler:
        try:
            for line in lines(sampler, stop, interval):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except BrokenPipeError:  # the reader is gone: same as stdin closing
            return 0
    return 0


if __name__ == "__main__":  # pragma: no cover - runs in the container
    sys.exit(main())
