"""The events other parts raise, one function each: the GPU queue and reservations call these
(each is said once per box, to the routes that want it, and shown in the dashboard)."""

from __future__ import annotations

from datetime import datetime

from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import Said, announce
from ptdesk.core.site import Site


def queued_started(site: Site, name: str, connect: str, container_id: str) -> Said | None:
    """A queued experiment got its GPUs and started; `connect`: its URL or ssh line."""
    return announce(site, f"started:{container_id}", Notice(
        "started", f"ptdesk: '{name}' started", f"Your queued experiment '{name}' started. Connect: {connect}"))


def gpu_freed(site: Site, gpus: tuple[int, ...], waited_since: float) -> Said | None:
    """GPUs this person waits for (queued, or asked with --when-free) are free now."""
    ids = ", ".join(map(str, gpus))
    return announce(site, f"gpu-free:{ids}:{waited_since}", Notice(
        "gpu-free", f"ptdesk: GPU {ids} on '{site.name}' is free",
        f"GPU {ids} on '{site.name}' is free now. Take it: ptdesk new ... --gpus {ids.replace(' ', '')}"))


def reservation_starting(site: Site, gpus: tuple[int, ...], starts: float, ends: float) -> Said | None:
    """A reservation of this person's starts soon (the reservations call this some minutes ahead)."""
    ids = ", ".join(map(str, gpus))
    at = datetime.fromtimestamp(starts).strftime("%H:%M")
    until = datetime.fromtimestamp(ends).strftime("%H:%M")
    return announce(site, f"reservation:{ids}:{starts}", Notice(
        "reservation", f"ptdesk: your reservation of GPU {ids} starts at {at}",
        f"Your reservation of GPU {ids} on '{site.name}' runs {at}-{until}."))


def job_finished(site: Site, name: str, status: str, exit_code: int | None, duration: float | None,
                 gpu_hours: float, last_lines: tuple[str, ...] = ()) -> Said | None:
    """A batch job of this person's ended (succeeded, failed, timed out, cancelled): how, and how it ended."""
    took = "" if duration is None else f" after {int(duration) // 60}m{int(duration) % 60:02d}s"
    code = "" if exit_code is None else f" (exit code {exit_code})"
    tail = "\n".join(last_lines[-5:])
    return announce(site, f"job:{site.name}:{name}", Notice(
        "job", f"ptdesk: job '{name}' {status}{code}",
        f"Job '{name}' on '{site.name}' {status}{code}{took}, {gpu_hours:.2f} GPU-hours."
        + (f" Last lines:\n{tail}" if tail else "") + f"\nLog: ptdesk logs {name}"))
