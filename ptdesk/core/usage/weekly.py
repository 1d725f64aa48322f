"""The weekly report through the routes: last week's figures, sent once per box and week.

The box's service (`ptdesk watch`) calls `send_if_due` every few minutes; the once mechanism
(ptdesk.core.notify.once, a marker on the engine) makes one watcher of the box send it, however many
watch. `ptdesk report --send` sends the chosen range now, to the person's own routes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import Said, say_now
from ptdesk.core.notify.once import first_to_say
from ptdesk.core.usage import render
from ptdesk.core.usage.collect import box_figures, document

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def last_week(now: float) -> tuple[float, float]:
    """Monday 00:00 a week before this one, to this Monday 00:00 (the workstation's time zone)."""
    today = datetime.fromtimestamp(now).astimezone()
    monday = today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=today.weekday())
    return ((monday - timedelta(days=7)).timestamp(), monday.timestamp())


def notice(report: dict, where: str) -> Notice:
    return Notice("report", f"ptdesk: GPU use on {where}, {render.period_text(report)}", render.text(report))


def send_if_due(site: Site, now: float) -> Said | None:
    """Last week's report of this box, once per week and box (None: said already, by this or another
    watcher, or nothing was recorded last week)."""
    start, end = last_week(now)
    if not first_to_say(site, f"usage-week:{site.config.instance}:{site.name}:{int(start)}"):
        return None
    report = document([box_figures(site, start, end)], start, end)
    if not report["people"]:
        return None  # nothing was recorded last week (a new box, or no `ptdesk watch`): nothing to say
    return say_now(site.config, notice(report, site.name))


def send_now(site: Site, report: dict, where: str) -> Said:
    """`ptdesk report --send`: this report to the person's routes that take reports, now."""
    return say_now(site.config, notice(report, where))
