"""One size formatter for the CLI and the dashboard (ptdesk.core.base.units)."""

from __future__ import annotations

import pytest

from ptdesk.core.base.units import human_bytes, unit_for

MiB, GiB = 2**20, 2**30


@pytest.mark.parametrize(("value", "text"), [
    (None, "N/A"), (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (512 * MiB, "512 MiB"),
    (650 * MiB, "650 MiB"), (1.5 * GiB, "1.5 GiB"), (80 * GiB, "80.0 GiB"), (3 * 2**40, "3.0 TiB"),
    (5 * 2**50, "5120.0 TiB"),
])
def test_human_bytes(value, text):
    assert human_bytes(value) == text


def test_unit_for_picks_the_largest_unit_at_or_below_the_value():
    assert unit_for(1000) == (1, "B")
    assert unit_for(80 * GiB) == (GiB, "GiB")
    assert unit_for(GiB - 1) == (MiB, "MiB")


def test_the_dashboard_shows_used_over_total_in_one_unit():
    from ptdesk.tui import format as fmt

    assert fmt.size_pair(10 * GiB, 80 * GiB) == "10.0/80.0 GiB"
