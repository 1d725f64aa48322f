"""`I`: what the idle cull would stop, and when — `ptdesk cull --dry-run` in the dashboard, for the
selected experiment's workstation — with `x` to keep the selected one (as `ptdesk keep NAME`). The
GPUs are judged by one sample taken now, as the dry run does (the box's watcher by its window)."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ptdesk.core.experiments.culling import CullPlan, GpuWindow
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings
from ptdesk.tui.errors import notify_error
from ptdesk.tui.jobs import JobDone, run_job

COLUMNS = ("Name", "Kind", "Idle", "Cull", "When")  # and How, which takes what they leave
MIN_HOW = 16  # narrower, How would wrap a word a line
WORDS = {"warn": "would warn now", "warned": "warned", "stop": "would stop now", "kept": "kept", "-": "-"}
STYLE = {"warn": "yellow", "warned": "bold yellow", "stop": "bold red", "kept": "green", "-": "dim"}


def when_text(plan: CullPlan) -> str:
    if plan.deadline:
        return "stops " + time.strftime("%H:%M", time.localtime(plan.deadline))
    if plan.kept_until:
        return "kept until " + time.strftime("%H:%M", time.localtime(plan.kept_until))
    return "-"


def idle_text(plan: CullPlan) -> str:
    if plan.idle_seconds is None:
        return "?"
    return f"{plan.idle_seconds / 60:.0f}m" if plan.idle_seconds < 7200 else f"{plan.idle_seconds / 3600:.1f}h"


def how_width(rows: list[tuple[Text, ...]], room: int) -> int:
    """The How column's width: what the other columns (at their widest, headers included) leave."""
    others = sum(max([len(label), *(row[i].cell_len for row in rows)])
                 for i, label in enumerate(COLUMNS))
    return max(MIN_HOW, room - others - 2 * 6)  # a cell's padding each side


class IdleCull(Screen[None]):
    SCOPE = "cull"
    BINDINGS = bindings("cull")

    def __init__(self, ws: Workstation) -> None:
        super().__init__()
        self.ws = ws
        self.plans: dict[str, CullPlan] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="idle-cull"):
            yield Static(f"The idle cull on {self.ws.name}: what it would stop, and when", classes="dialog-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="idle-cull-table")
            yield Static(id="idle-cull-note")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.action_reload()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    def _plan(self) -> list[CullPlan]:
        window = GpuWindow()
        window.add(self.ws.gpu_snapshot(attribute=False))
        return self.ws.cull_plan(window, whole_window=False)

    def action_reload(self) -> None:
        run_job(self, self._plan, title="Reading the idle cull", on_done=self._loaded, group="cull-load")

    def _loaded(self, plans: list[CullPlan]) -> None:
        self.plans = {p.name: p for p in plans}
        table = self.query_one(DataTable)
        rows = [(Text(p.name), Text(p.kind), Text(idle_text(p)), Text(WORDS[p.action], style=STYLE[p.action]),
                 Text(when_text(p))) for p in plans]
        with self.app.batch_update():
            # The columns afresh each time (they would keep an earlier row's width): How ("a GPU at 5 %
            # or more within 30m (or not read yet)") takes the width the others leave and wraps
            # within it; at 80 columns it was cut off.
            table.clear(columns=True)
            for key, label in zip(("name", "kind", "idle", "action", "when"), COLUMNS, strict=True):
                table.add_column(label, key=key)
            table.add_column("How", key="how", width=how_width(rows, table.scrollable_content_region.width))
            for p, row in zip(plans, rows, strict=True):
                table.add_row(*row, Text(p.detail, style="dim"), key=p.name, height=None)
        self.query_one("#idle-cull-note", Static).update(Text(
            "x keep the selected one for an hour · R read again · escape back" if plans else
            "No running experiments here.", style="dim"))

    def action_keep(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.notify("No experiment to keep.", severity="warning")
            return
        name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        keep(self, self.ws, name, self.action_reload)


def keep(screen: Screen, ws: Workstation, name: str, then: object = None) -> None:
    """Keep `name` from the cull for an hour (at most keep_max), in the background; say until when."""

    def done(until: float) -> None:
        screen.notify(f"{name} is kept until {time.strftime('%H:%M', time.localtime(until))}: the idle cull "
                      "will not stop it before then.", markup=False)
        if callable(then):
            then()

    run_job(screen, lambda: ws.keep(name), title=f"Keeping {name}", on_done=done,
            on_error=lambda error: notify_error(screen.app, error, title=f"Keeping {name}"), group="keep")
