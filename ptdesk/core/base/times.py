"""Times as the engine and Jupyter write them, read one way everywhere."""

from __future__ import annotations

from datetime import datetime


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time as the engine and Jupyter write it (Z suffix) as epoch seconds; None when
    absent or unreadable (an unknown time is never taken for "idle since forever")."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
