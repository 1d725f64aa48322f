"""Where the usage history lives: on the box's engine, shared by everyone who uses the box.

Like the queue and the reservations, the history is the box's, not one person's: every person's
`ptdesk report` on the box (locally or over ssh://) reads the same figures, whoever's `ptdesk watch`
recorded them, with nothing to install there. It is a created, never-started record container
(`ptdesk.usage-INSTANCE`, no network, never run) whose writable layer holds the day files under
/usage/YYYY-MM/DAY-RECORDER.ptu, written with put_archive and read with get_archive one month
folder at a time. Nothing secret is in it: experiment names, owners, images, numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.sharing import booking, records
from ptdesk.core.usage.buckets import DayFile, Decoded, Unreadable, decode, encode
from ptdesk.errors import Conflict, NotFound

if TYPE_CHECKING:
    from ptdesk.core.site import Site

LABEL_USAGE = "ptdesk.usage"
ROOT = "/usage"
MONTH_LIMIT = 64 * 1024 * 1024  # a month folder is read whole; a full month of one 8-GPU box is ~1.5 MB


def _month(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m")


def file_name(day: int, recorder_id: str) -> str:
    return f"{_month(day)}/{day}-{recorder_id}.ptu"


def holder(site: Site, create: bool) -> str | None:
    """The id of the box's history container (made on first write); None when there is none yet."""
    labels = {LABEL_USAGE: "1", LABEL_INSTANCE: site.config.instance}
    found = records.list_labelled(site.engine, labels)
    if found or not create:
        return found[0]["Id"] if found else None
    with contextlib.suppress(Conflict):  # another recorder made it a moment ago: use theirs
        return records.create_record(site.engine, f"ptdesk.usage-{site.config.instance}",
                                     booking.record_image(site), labels)
    found = records.list_labelled(site.engine, labels)
    return found[0]["Id"] if found else None


def write_day(site: Site, day: DayFile, recorder_id: str) -> None:
    """Replace this recorder's file of that day (only this recorder writes it: no lock needed)."""
    container = holder(site, create=True)
    if container is not None:
        site.engine.put_files(container, "/", [FileSpec(f"{ROOT.lstrip('/')}/{file_name(day.day, recorder_id)}",
                                                        encode(day), mode=0o644)])


def months(start: float, end: float) -> list[str]:
    first, last = int(start // 86400), int(max(start, end - 1) // 86400)
    return list(dict.fromkeys(_month(d) for d in range(first, last + 1)))


def read_days(site: Site, start: float, end: float) -> Iterator[Decoded]:
    """Every day file touching [start, end) on this box; unreadable ones are skipped."""
    container = holder(site, create=False)
    if container is None:
        return
    first, last = int(start // 86400), int(max(start, end - 1) // 86400)
    for month in months(start, end):
        try:
            files = site.engine.read_folder(container, f"{ROOT}/{month}", MONTH_LIMIT)
        except NotFound:
            continue  # nothing was recorded that month
        for name, data in sorted(files.items()):
            day_text = name.rsplit("/", 1)[-1].split("-", 1)[0]
            if not (day_text.isdigit() and first <= int(day_text) <= last):
                continue
            with contextlib.suppress(Unreadable):
                yield decode(data)
