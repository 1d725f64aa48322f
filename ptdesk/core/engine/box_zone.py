"""The time zone a workstation keeps, learnt from its engine: reservation times people type and read
are the box's, not those of the laptop that reaches it over ssh://.

`docker info` gives the engine's SystemTime in the box's local time, with its UTC offset
(`2026-12-07T16:01:02.38+01:00`; dockerd runs in the box's zone). Nothing else is needed on the box.
When that offset is this machine's own at the moment, this machine's zone is used (its name and its
daylight-saving rules); otherwise a fixed offset, named as Python names one (`UTC+05:30`). A fixed
offset is right until the box's next daylight-saving change: times across it are an hour off.
"""

from __future__ import annotations

import re
import weakref
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptdesk.core.engine.client import Engine

# RFC 3339 with nanoseconds (Go's), which fromisoformat of Python 3.11 takes only cut to micro.
_OFFSET = re.compile(r"(?:Z|([+-])(\d{2}):(\d{2}))$")
_ASKED: weakref.WeakKeyDictionary[Engine, tzinfo | None] = weakref.WeakKeyDictionary()


def zone_of_system_time(text: str | None, moment: datetime | None = None) -> tzinfo | None:
    """The zone an engine's SystemTime is written in; None when it is this machine's own (or unreadable)."""
    found = _OFFSET.search((text or "").strip())
    if found is None:
        return None
    sign, hours, minutes = found.groups()
    offset = timedelta(0) if sign is None else (1 if sign == "+" else -1) * timedelta(
        hours=int(hours), minutes=int(minutes))
    local = (moment or datetime.now().astimezone()).utcoffset()
    return None if offset == local else timezone(offset)


def box_zone(engine: Engine) -> tzinfo | None:
    """The engine's zone (None: this machine's), asked once per connection."""
    if engine not in _ASKED:
        _ASKED[engine] = zone_of_system_time(str(engine.info().get("SystemTime") or ""))
    return _ASKED[engine]
