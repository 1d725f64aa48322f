"""`u`: the week's GPU use on the selected experiment's workstation — a bar per person (busy, held
at low use, held idle), then the figures per person: the "usage" actions of tui.actions.

Read from the box's usage history (what `ptdesk watch` records) in a background job."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ptdesk.core.base import clock
from ptdesk.core.usage.collect import box_figures, document
from ptdesk.core.usage.ranges import report_range
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings
from ptdesk.tui.errors import notify_error
from ptdesk.tui.jobs import JobDone, run_job
from ptdesk.tui.widgets.columns import add_keyed_columns

BAR = 30  # columns of the longest bar (fits 80 with the name and the figures)
NAME = 12


def bars(people: list[dict]) -> Text:
    """One line per person: █ busy (utilisation-weighted), ▒ the rest of the held time, ░ held while idle."""
    most = max((p["held_gpu_hours"] for p in people), default=0.0)
    out = Text()
    for p in sorted(people, key=lambda p: -p["held_gpu_hours"]):
        if not p["held_gpu_hours"] and not p["reserved_unused_gpu_hours"]:
            continue
        scale = BAR / most if most else 0.0
        busy = round(p["busy_gpu_hours"] * scale)
        idle = round(p["idle_held_gpu_hours"] * scale)
        held = max(round(p["held_gpu_hours"] * scale), busy + idle)
        out.append(f"{p['person'][:NAME]:<{NAME}} ")
        out.append("█" * busy, style="green")
        out.append("▒" * (held - busy - idle), style="yellow")
        out.append("░" * idle, style="red")
        out.append(" " * (BAR - held))
        out.append(f" {p['held_gpu_hours']:.1f} h held, {p['busy_gpu_hours']:.1f} busy\n")
    if not out:
        # Not "nothing recorded": the table below may still count jobs that held no GPU.
        out.append("No GPU time held in the last 7 days (the box's service, ptdesk watch, records it).",
                   style="dim")
    return out


class Usage(Screen[None]):
    SCOPE = "usage"
    BINDINGS = bindings("usage")

    def __init__(self, ws: Workstation) -> None:
        super().__init__()
        self.ws = ws
        self.report: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="usage"):
            yield Static(f"GPU use on {self.ws.name}, the last 7 days", classes="dialog-title")
            yield Static(id="usage-bars")
            yield Static(Text("█ busy  ▒ held, rest of it  ░ held while idle", style="dim"), id="usage-key")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="usage-table")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        add_keyed_columns(self.query_one(DataTable), (
            ("person", "Person"), ("held", "Held h"), ("busy", "Busy h"), ("idle", "Idle h"),
            ("unused", "Resv unused h"), ("jobs", "Jobs"), ("peak", "Peak GiB")))
        self.action_reload()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    def action_reload(self) -> None:
        def read() -> dict:
            start, end = report_range("7d", None, clock.now())
            return document([box_figures(self.ws, start, end)], start, end)

        run_job(self, read, title="Reading GPU use", on_done=self._loaded,
                on_error=lambda error: notify_error(self.app, error, title="Reading GPU use"), group="usage-load")

    def _loaded(self, report: dict) -> None:
        self.report = report
        self.query_one("#usage-bars", Static).update(bars(report["people"]))
        table = self.query_one(DataTable)
        with self.app.batch_update():
            table.clear()
            for p in report["people"]:
                table.add_row(p["person"], f"{p['held_gpu_hours']:.2f}", f"{p['busy_gpu_hours']:.2f}",
                              f"{p['idle_held_gpu_hours']:.2f}", f"{p['reserved_unused_gpu_hours']:.2f}",
                              f"{p['jobs_run']} ({p['jobs_failed']} failed)", f"{p['peak_memory_gib']:.1f}",
                              key=p["person"])
