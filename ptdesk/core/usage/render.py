"""The usage report as people read it: a table, CSV, Markdown; and the weekly notice's text."""

from __future__ import annotations

import csv
import io
from datetime import datetime

COLUMNS = (("held_gpu_hours", "HELD h"), ("busy_gpu_hours", "BUSY h"), ("idle_held_gpu_hours", "IDLE-HELD h"),
           ("reserved_unused_gpu_hours", "RESERVED-UNUSED h"), ("jobs_run", "JOBS"), ("jobs_failed", "FAILED"),
           ("peak_memory_gib", "PEAK GiB"))
SECTIONS = (("people", "person", "PERSON"), ("workstations", "workstation", "WORKSTATION"),
            ("images", "image", "IMAGE"))


def _cell(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _cells(entry: dict, key: str) -> list[str]:
    return [str(entry[key]), *(_cell(entry[c]) if c in entry else "-" for c, _ in COLUMNS)]


def period_text(document: dict) -> str:
    def day(moment: float) -> str:
        return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M")
    return f"{day(document['since'])} to {day(document['until'])}"


def text(document: dict) -> str:
    """Three aligned tables (people, workstations, images) under the range."""
    out = [f"GPU use {period_text(document)}"]
    for section, key, title in SECTIONS:
        rows = [_cells(e, key) for e in document[section]]
        head = [title, *(h for _, h in COLUMNS)]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        out += ["", "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        if not rows:
            out.append("(nothing recorded: the box's service, `ptdesk watch`, records GPU use)")
    return "\n".join(out)


def markdown(document: dict) -> str:
    out = [f"**GPU use {period_text(document)}**"]
    for section, key, title in SECTIONS:
        out += ["", "| " + " | ".join([title.title(), *(h for _, h in COLUMNS)]) + " |",
                "|" + "---|" * (len(COLUMNS) + 1)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(e, key)) + " |" for e in document[section]]
    return "\n".join(out)


def csv_text(document: dict) -> str:
    """One table: a `section` column says whether a row is a person, workstation or image."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "name", *(c for c, _ in COLUMNS)])
    for section, key, _ in SECTIONS:
        for entry in document[section]:
            writer.writerow([key, entry[key], *(entry.get(c, "") for c, _ in COLUMNS)])
    return buffer.getvalue()
