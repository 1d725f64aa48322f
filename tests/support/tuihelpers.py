"""Helpers for the dashboard tests (`from tests.support.tuihelpers import ...`)."""

from __future__ import annotations

import html
import re
from collections import defaultdict

from ptdesk.tui.screens.new_experiment import NewExperiment

# The dashboard tests reuse the NVML scenarios, and wait the way every test does.
from tests.support import nvml_scenarios  # noqa: F401
from tests.support.helpers import settle  # noqa: F401

_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
                   r'clip-path="url\(#terminal-[^"]*?line-(\d+)\)">(.*?)</text>')


def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line, as text (from the app's own screenshot)."""
    svg = app.export_screenshot()
    cell = None
    rows: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for x, length, line, text in _TEXT.findall(svg):
        text = html.unescape(text).replace("\xa0", " ")
        if text and cell is None:
            cell = float(length) / len(text)
        rows[int(line)].append((float(x), text))
    width = app.size.width
    out = []
    for i in range(app.size.height):
        chars = [" "] * width
        for x, text in rows.get(i, []):
            start = round(x / (cell or 1))
            for j, ch in enumerate(text):
                if 0 <= start + j < width:
                    chars[start + j] = ch
        out.append("".join(chars).rstrip())
    return out


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))


async def open_form(pilot, app):
    """Press `n` once the first list is in, as a person would: the new-experiment form, open."""
    await settle(pilot, lambda: app.main.listed, message="the first list")
    await pilot.press("n")
    return await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)


__all__ = ["nvml_scenarios", "open_form", "screen_lines", "screen_text", "settle"]


