"""The report's range, as people type it: `7d`, `2026-12-01`, `2026-12-01T09:00`, `last week`, `monday`.

Each phrase names a period in the workstation's time zone (a date: that day; `last week`: Monday to
Monday; `monday`: the latest Monday; `7d`: the moment seven days ago). `--since` takes the start of
its period, `--until` the end of its (so `--since 2026-12-01 --until 2026-12-03` covers three whole
days); without `--until` the range ends now, without `--since` it is the last seven days.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from ptdesk.core.base.durations import seconds
from ptdesk.errors import InvalidInput

DEFAULT_SPAN = 7 * 86400.0
FORMS = ("Use a length back from now (7d, 12h, 2w), a date (2026-12-01), an ISO time (2026-12-01T09:00), today, "
         "yesterday, a weekday (monday), this week, last week, this month or last month.")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _midnight(day: date) -> float:
    return datetime.combine(day, time()).astimezone().timestamp()


def _month_start(day: date, back: int) -> date:
    month = day.month - 1 - back
    return date(day.year + month // 12, month % 12 + 1, 1)


def period(text: str, now: float) -> tuple[float, float]:
    """The (start, end) a phrase names; InvalidInput, naming the forms, for anything else."""
    value = " ".join((text or "").strip().lower().split())
    today = datetime.fromtimestamp(now).astimezone().date()
    monday = today - timedelta(days=today.weekday())
    if not value:
        raise InvalidInput("The range is empty: it names no time.", FORMS)
    length = seconds(value) if value and value[0].isdigit() else None
    if length is not None and length > 0:
        return (now - length, now - length)
    if value == "now":
        return (now, now)
    named = {"today": (today, 1), "yesterday": (today - timedelta(days=1), 1),
             "this week": (monday, 7), "last week": (monday - timedelta(days=7), 7)}
    if value in named:
        first, days = named[value]
        return (_midnight(first), _midnight(first + timedelta(days=days)))
    if value in ("this month", "last month"):
        first = _month_start(today, 0 if value == "this month" else 1)
        return (_midnight(first), _midnight(_month_start(first, -1)))
    for i, name in enumerate(_DAYS):
        if value and len(value) >= 3 and name.startswith(value):
            first = today - timedelta(days=(today.weekday() - i) % 7)
            return (_midnight(first), _midnight(first + timedelta(days=1)))
    try:
        first = date.fromisoformat(value)
        return (_midnight(first), _midnight(first + timedelta(days=1)))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise InvalidInput(f"{text.strip()!r} is not a time ptdesk understands.", FORMS) from None
    stamp = (moment if moment.tzinfo else moment.astimezone()).timestamp()
    return (stamp, stamp)


def report_range(since: str | None, until: str | None, now: float) -> tuple[float, float]:
    """The [start, end) a report covers; InvalidInput when a phrase does not parse or ends first."""
    end = min(period(until, now)[1], now) if until is not None else now
    start = period(since, now)[0] if since is not None else end - DEFAULT_SPAN
    if start >= end:
        raise InvalidInput(f"The range starts ({since or 'default'}) at or after it ends ({until or 'now'}).",
                           "Give --since a time before --until (or leave --until out: it is now).")
    return (start, end)
