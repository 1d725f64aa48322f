"""Sizes as people read them, shared by the CLI and the dashboard (so both print the same thing).

Lives in core because both faces use it and neither may import the other (tui must not import
commands); it imports nothing, so it costs neither of them anything.
"""

from __future__ import annotations

NA = "N/A"
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_WHOLE = frozenset({"B", "KiB", "MiB"})  # below GiB a decimal adds width, not information


def unit_for(value: float) -> tuple[int, str]:
    """The largest binary unit that keeps `value` at 1 or more (B below 1 KiB): (its size in bytes, its name)."""
    scale = 1
    for unit in UNITS[:-1]:
        if value < scale * 1024:
            return scale, unit
        scale *= 1024
    return scale, UNITS[-1]


def human_bytes(value: int | float | None) -> str:
    """512 MiB, 1.5 GiB: whole numbers up to MiB, one decimal from GiB up; N/A when unknown."""
    if value is None:
        return NA
    scale, unit = unit_for(float(value))
    amount = value / scale
    return f"{amount:.0f} {unit}" if unit in _WHOLE else f"{amount:.1f} {unit}"
