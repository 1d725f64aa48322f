"""What a container that failed its launch last printed, for the one sentence the person reads."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def last_words(site: Site, container_id: str, memory: str) -> str | None:
    """What a container that failed its launch last printed (and its exit code if it died), or
    that the memory limit killed it (the kernel's OOM killer leaves no output to quote)."""
    try:
        state = site.engine.inspect(container_id)["State"]
        lines = _tail(site, container_id)
        # The engine copies a container's output to its log asynchronously: a process that just
        # died may have its last words on the way still. Give them a moment before saying "none".
        deadline = time.monotonic() + 1.0
        while not lines and not state.get("Running") and time.monotonic() < deadline:
            time.sleep(0.05)
            lines = _tail(site, container_id)
    except PtdeskError:
        return None
    if state.get("Running"):
        return f"Its last output was: {lines[-1].strip()}" if lines else None
    if state.get("OOMKilled"):
        return (f"The memory limit ({memory}) killed it before it was ready: raise the memory limit "
                "(give it at least 512m; the default is 16g).")
    said = f" after printing: {lines[-1].strip()}" if lines else " without any output"
    return f"It exited with code {state.get('ExitCode')}{said}"


def _tail(site: Site, container_id: str) -> list[str]:
    frames = site.engine.logs(container_id, tail=5)
    try:
        return [ln for ln in b"".join(frames).decode(errors="replace").splitlines() if ln.strip()]
    finally:
        frames.close()
