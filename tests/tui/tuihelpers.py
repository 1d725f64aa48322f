"""Helpers for the dashboard tests (import with `from tuihelpers import ...`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

# The NVML scenarios live with the GPU tests; the dashboard tests reuse them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
import nvml_scenarios  # noqa: E402


async def settle(pilot, predicate: Callable[[], object], timeout: float = 30.0, message: str = "condition"):
    """Let the app run until `predicate()` is true (polled; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await pilot.pause(0.05)


__all__ = ["nvml_scenarios", "settle"]


