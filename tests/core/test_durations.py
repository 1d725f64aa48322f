"""The one duration grammar, shared by `cull --idle` and `collab add/rotate --expires`."""

from __future__ import annotations

import pytest

from ptdesk.core.base import durations
from ptdesk.core.collaborators import grants
from ptdesk.errors import InvalidInput


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("4h", 14400), ("1.5h", 5400),
                                               ("1d", 86400), ("2w", 14 * 86400), (" 7D ", 7 * 86400),
                                               ("0.5 m", 30)])
def test_every_unit_and_decimals_are_accepted(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "90", "4", "0s", "0.0h", "-3d", "1.d", ".5h", "2y", "4h30m", "1e3s"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        durations.parse_duration(text)
    assert caught.value.exit_code == 2
    assert caught.value.hint and "s, m, h, d or w" in caught.value.hint and "1.5h" in caught.value.hint


@pytest.mark.parametrize("text", ["2w", "1.5h", "90s", "3d"])
def test_idle_and_expires_read_a_duration_alike(text: str) -> None:
    now = 1_800_000_000.0
    assert durations.parse_duration(text) == grants.parse_expires(text, now=now) - now  # type: ignore[operator]


@pytest.mark.parametrize("text", ["0s", "0.0h", "0m"])
def test_a_zero_duration_is_said_as_zero_not_as_a_spelling_mistake(text: str) -> None:
    """'0s' is a duration in the grammar; "'0s' is not a duration" sent people looking for another spelling."""
    with pytest.raises(InvalidInput) as caught:
        durations.parse_duration(text)
    assert caught.value.message == f"{text!r} is no time at all: give a duration longer than zero."
