"""Reservation times on a workstation in another time zone than the laptop's: typed and shown on
the box's clock, with its zone (the box's offset as its engine's `docker info` reports it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ptdesk.core.engine.box_zone import zone_of_system_time
from ptdesk.core.sharing.reservations import Reservation, clock_text, parse_end, parse_when, span, zone

INDIA = timezone(timedelta(hours=5, minutes=30))
UTC_NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # 20:30 in India


def test_the_engines_system_time_gives_the_boxs_offset_and_none_when_it_is_ours() -> None:
    here = datetime(2026, 12, 7, 15, 0).astimezone(UTC)  # a machine on UTC
    assert zone_of_system_time("2026-12-07T20:31:02.387268775+05:30", here) == INDIA
    assert zone_of_system_time("2026-12-07T10:01:02.1-05:00", here) == timezone(timedelta(hours=-5))
    assert zone_of_system_time("2026-12-07T15:01:49.387268775Z", here) is None  # the same as this machine's
    assert zone_of_system_time("", here) is None and zone_of_system_time("garbage", here) is None
    assert zone(UTC_NOW.timestamp(), INDIA) == "UTC+05:30"


def test_times_people_type_are_on_the_boxs_clock() -> None:
    now = UTC_NOW.timestamp()
    assert parse_when("21:00", now, tz=INDIA) == datetime(2026, 12, 7, 21, 0, tzinfo=INDIA).timestamp()
    assert parse_when("tomorrow 9:00", now, tz=INDIA) == datetime(2026, 12, 8, 9, 0, tzinfo=INDIA).timestamp()
    assert parse_when("2026-12-09T09:00", now, tz=INDIA) == datetime(2026, 12, 9, 9, 0, tzinfo=INDIA).timestamp()
    # A time given with its own zone means that moment, wherever the box is.
    in_utc = datetime(2026, 12, 9, 9, 0, tzinfo=UTC).timestamp()
    assert parse_when("2026-12-09T09:00Z", now, tz=INDIA) == in_utc
    # At 23:30 UTC on the 7th it is the 8th on the box: its "tomorrow" is the 9th.
    late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC).timestamp()
    assert parse_when("tomorrow 9:00", late, tz=INDIA) == datetime(2026, 12, 9, 9, 0, tzinfo=INDIA).timestamp()
    assert parse_when("wed 9:00", late, tz=INDIA) == datetime(2026, 12, 9, 9, 0, tzinfo=INDIA).timestamp()
    start = parse_when("21:00", now, tz=INDIA)
    assert parse_end("23:00", start, now, tz=INDIA) == start + 2 * 3600
    assert parse_end("4h", start, now, tz=INDIA) == start + 4 * 3600


def test_times_are_shown_on_the_boxs_clock_with_its_zone() -> None:
    start = datetime(2026, 12, 7, 21, 0, tzinfo=INDIA).timestamp()
    today = UTC_NOW.timestamp()
    assert clock_text(start, today, tz=INDIA) == "21:00"  # 15:30 UTC: today's, on the box's clock
    booked = Reservation("c" * 64, (0,), start, start + 3 * 3600, "ann", tz=INDIA)
    assert booked.describe().endswith("UTC+05:30") and booked.describe().startswith("ann ")
    assert booked.when() == span(start, start + 3 * 3600, INDIA)
    shown = booked.to_json(today)
    assert shown["zone"] == "UTC+05:30" and shown["start_text"].endswith("21:00")
    assert shown["end_text"].endswith("00:00")  # midnight there, 18:30 here
