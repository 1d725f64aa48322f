"""Pure text formatting for the dashboard: bars, sizes, durations. No Textual, easy to test.

Single sizes come from ptdesk.core.base.units.human_bytes, the formatter the CLI uses too.
"""

from __future__ import annotations

from rich.text import Text

from ptdesk.core.base.models import Experiment, status_word
from ptdesk.core.base.units import NA, unit_for

__all__ = ["status_word"]  # the core's one word per state, used through this module by the widgets


def percent(value: float | None, digits: int = 0) -> str:
    return NA if value is None else f"{value:.{digits}f}%"


def size_pair(used: int | None, total: int | None) -> str:
    """'10.0/80.0 GiB': both in the unit of the total, so the column stays short."""
    if used is None or not total:
        return NA
    scale, unit = unit_for(total)
    return f"{used / scale:.1f}/{total / scale:.1f} {unit}"


def duration(seconds: float | None) -> str:
    """3s, 4m, 2h05m, 3d04h: short enough for a table column."""
    if seconds is None or seconds < 0:
        return NA
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def bar(fraction: float | None, width: int = 12) -> Text:
    """A bar that changes colour as it fills; N/A when the value could not be read."""
    if fraction is None:
        return Text(NA.ljust(width), style="dim")
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    style = "green" if fraction < 0.5 else "yellow" if fraction < 0.85 else "red"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "grey37"))


STATUS_STYLE = {
    "running": "bold green",
    "succeeded": "green",  # a batch job's ends
    "failed": "bold red",
    "timed out": "bold red",
    "cancelled": "dim",
    "launching": "bold cyan",
    "queued": "bold yellow",
    "removing": "bold magenta",
    "exited": "yellow",
    "stopped": "yellow",
    "created": "yellow",
    "paused": "yellow",
    "restarting": "cyan",
    "dead": "bold red",
    "missing": "bold red",
}


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value.split(" #")[0], ""))  # "queued #2" is queued


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def removal_note(e: Experiment) -> str:
    """What removing `e` does, for the question before it."""
    if e.foreign:  # a team lead cleaning up: say plainly whose it is
        return (f"It belongs to {e.owner}'s ptdesk, not yours: the container goes away, and "
                f"{e.owner}'s ptdesk releases what it held the next time it runs.")
    return ("The container, its port, GPUs, keys and token go away; the workspace folder stays"
            f"{': ' + e.workspace if e.workspace else ''}.")
