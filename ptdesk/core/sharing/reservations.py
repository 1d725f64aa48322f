"""GPU reservations: GPUs booked by one person from a start to an end time, on the engine.

A reservation is a created, never-started "record" container on the workstation's engine whose
labels say which GPUs, from when to when, and whose (no secret anywhere): every person's ptdesk on
the box reads the same ones, locally or over ssh://. Labels cannot change, so shortening a started
reservation re-makes its record with the new end (the new one first, then the old one removed,
under the GPU lock: there is never a moment with neither). Every change to reservations is made
under the engine's GPU lock, which is what makes an overlap check and the booking one step for
two people reserving at once.

Times are the workstation's and are always shown with its zone: this process's local zone for the
local engine, the zone an ssh:// box's engine reports (ptdesk.core.engine.box_zone) for a remote one.
A `tz` of None below means this machine's zone.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from ptdesk.core.base.durations import seconds
from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.errors import InvalidInput

LABEL_RESERVATION = "ptdesk.reservation"
LABEL_GPUS = "ptdesk.reservation.gpus"
LABEL_START = "ptdesk.reservation.start"
LABEL_END = "ptdesk.reservation.end"
LABEL_OWNER = "ptdesk.reservation.owner"
TIME_FORMS = "a time like 14:00, 'tomorrow 9:00', 'mon 9:00', an ISO date and time (2026-12-08T09:00), or 'now'"
# An ended reservation's record stays this long (who had the GPUs yesterday, in --json), then
# whoever lists reservations removes it: records do not pile up on the engine.
PAST_KEPT = 24 * 3600.0
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Reservation:
    id: str  # its record container's id
    gpus: tuple[int, ...]
    start: float
    end: float
    owner: str
    tz: tzinfo | None = field(default=None, compare=False)  # the workstation's zone (None: this machine's)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def when(self) -> str:
        """"14:00–18:00 UTC": its span on the workstation's clock, with the zone."""
        return span(self.start, self.end, self.tz)

    def clock(self, moment: float) -> str:
        """A moment on the workstation's clock ('14:00', 'Tue 09:00'), without the zone."""
        return clock_text(moment, tz=self.tz)

    def describe(self) -> str:
        """"ann 14:00–18:00 UTC" (the day too when it is not today's)."""
        return f"{self.owner} {self.when()}"

    def to_json(self, now: float) -> dict:
        return {"id": self.short_id, "gpus": list(self.gpus), "start": self.start, "end": self.end,
                "owner": self.owner, "start_text": clock_text(self.start, tz=self.tz),
                "end_text": clock_text(self.end, tz=self.tz), "zone": zone(self.start, self.tz),
                "state": "past" if self.end <= now else "active" if self.active(now) else "future"}


def local_time(moment: float, tz: tzinfo | None = None) -> datetime:
    """`moment` as the workstation's clock reads it (tz None: this machine's zone)."""
    return datetime.fromtimestamp(moment, tz) if tz is not None else datetime.fromtimestamp(moment).astimezone()


def clock_text(moment: float, today: float | None = None, tz: tzinfo | None = None) -> str:
    """A moment in the workstation's time zone: '14:00' today, 'Tue 09:00' in the week, else the date."""
    when = local_time(moment, tz)
    base = local_time(time.time() if today is None else today, tz)
    if when.date() == base.date():
        return when.strftime("%H:%M")
    if abs((when.date() - base.date()).days) < 7:
        return when.strftime("%a %H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def zone(moment: float | None = None, tz: tzinfo | None = None) -> str:
    """The zone's name at `moment` ('CET', 'UTC', or 'UTC+05:30' for a box known by its offset)."""
    return local_time(time.time() if moment is None else moment, tz).strftime("%Z")


def moment_text(moment: float, tz: tzinfo | None = None) -> str:
    """One moment with its zone: 'Tue 09:00 UTC'."""
    return f"{clock_text(moment, tz=tz)} {zone(moment, tz)}"


def span(start: float, end: float, tz: tzinfo | None = None) -> str:
    return f"{clock_text(start, tz=tz)}–{clock_text(end, tz=tz)} {zone(start, tz)}"


def parse_when(text: str, now: float, what: str = "a time", tz: tzinfo | None = None) -> float:
    """A moment people type, in the workstation's time zone; InvalidInput naming the forms."""
    value = " ".join((text or "").strip().lower().split())
    base = local_time(now, tz)
    if not value:
        raise InvalidInput(f"No {what.split(' ', 1)[-1]} was given.", f"Use {TIME_FORMS}.")
    if value == "now":
        return now
    day, _, rest = value.partition(" ")
    offset = {"today": 0, "tomorrow": 1}.get(day)
    if offset is None and day[:3] in _DAYS and rest:
        offset = (_DAYS.index(day[:3]) - base.weekday()) % 7 or 7
    hhmm = rest if offset is not None else value
    match = _CLOCK.fullmatch(hhmm)
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        moment = (base + timedelta(days=offset or 0)).replace(hour=int(match.group(1)), minute=int(match.group(2)),
                                                             second=0, microsecond=0)
        return moment.timestamp()
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise InvalidInput(f"{text.strip()!r} is not {what} ptdesk understands.", f"Use {TIME_FORMS}.") from None
    if parsed.tzinfo is None:  # as typed: on the workstation's clock
        parsed = parsed.replace(tzinfo=tz) if tz is not None else parsed.astimezone()
    return parsed.timestamp()


def parse_end(text: str, start: float, now: float, tz: tzinfo | None = None) -> float:
    """An end time, or a duration after the start ('4h')."""
    length = seconds(text or "")
    if length is not None and length > 0:
        return start + length
    try:
        return parse_when(text, now, "an end time", tz)
    except InvalidInput as exc:
        exc.hint = f"{exc.hint[:-1]}, or a length such as 4h." if exc.hint else exc.hint
        raise


def of(container: Mapping, tz: tzinfo | None = None) -> Reservation | None:
    """The reservation a listed record container is; None when its labels make no sense."""
    labels = container.get("Labels") or {}
    try:
        gpus = tuple(int(p) for p in (labels.get(LABEL_GPUS) or "").split(","))
        start, end = float(labels.get(LABEL_START) or ""), float(labels.get(LABEL_END) or "")
    except ValueError:
        return None
    if not gpus or end <= start or not labels.get(LABEL_OWNER):
        return None
    return Reservation(id=container["Id"], gpus=gpus, start=start, end=end, owner=labels[LABEL_OWNER], tz=tz)


def overlapping(reservations: Iterable[Reservation], gpus: Iterable[int], start: float,
                end: float) -> list[Reservation]:
    wanted = set(gpus)
    return [r for r in reservations if wanted & set(r.gpus) and r.start < end and start < r.end]


def blocking(reservations: Sequence[Reservation], gpu: int, owner: str, now: float) -> Reservation | None:
    """The reservation of someone else's that holds `gpu` right now."""
    return next((r for r in reservations if gpu in r.gpus and r.owner != owner and r.active(now)), None)


def upcoming(reservations: Sequence[Reservation], gpu: int, owner: str, now: float) -> Reservation | None:
    """The next reservation of someone else's on `gpu` that has not started yet."""
    future = [r for r in reservations if gpu in r.gpus and r.owner != owner and r.start > now]
    return min(future, key=lambda r: r.start, default=None)


def record_labels(instance: str, gpus: Sequence[int], start: float, end: float, owner: str) -> dict[str, str]:
    return {LABEL_RESERVATION: "1", LABEL_INSTANCE: instance, LABEL_GPUS: ",".join(map(str, gpus)),
            LABEL_START: f"{start:.3f}", LABEL_END: f"{end:.3f}", LABEL_OWNER: owner}


def record_name() -> str:
    # "ptdesk.reservation-…": experiment containers are ptdesk-NAME, so no experiment is called so.
    return f"ptdesk.reservation-{secrets.token_hex(6)}"
