"""Helpers for the dashboard tests (import with `from tuihelpers import ...`)."""

from __future__ import annotations

import html
import re
import sys
from collections import defaultdict
from pathlib import Path

# The NVML scenarios live with the GPU tests; the dashboard tests reuse them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
import nvml_scenarios  # noqa: E402
from helpers import settle  # noqa: E402, F401 - the dashboard tests' way to wait, shared with tests/e2e

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


__all__ = ["nvml_scenarios", "screen_lines", "screen_text", "settle"]


