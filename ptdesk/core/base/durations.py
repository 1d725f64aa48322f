"""The one grammar for durations a person types: `--idle 4h`, `--expires 2w`, `1.5d`.

A number (decimals allowed) and a unit: s, m, h, d or w. The unit is required: a bare "30" would
mean seconds to one command and days to another reader.
"""

from __future__ import annotations

import re
import time

from ptdesk.errors import InvalidInput

FORMS = "a number and a unit s, m, h, d or w (decimals allowed), like 90s, 30m, 1.5h, 2d or 2w"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso_utc(timestamp: float | None) -> str | None:
    """A moment as people and scripts read it in the audit log: ISO 8601, UTC, to the second."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def seconds(text: str) -> float | None:
    """Seconds in `text` when it is written in the duration grammar (zero included); None otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    return None if match is None else float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_duration(text: str) -> float:
    """A positive duration in seconds; InvalidInput (with the accepted forms) otherwise."""
    value = seconds(text or "")
    if value is None:
        raise InvalidInput(f"{text!r} is not a duration.", f"Use {FORMS}.")
    if value <= 0:  # it is one, so "not a duration" would send people looking for another spelling
        raise InvalidInput(f"{text!r} is no time at all: give a duration longer than zero.", f"Use {FORMS}.")
    return value


