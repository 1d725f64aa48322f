"""The dashboard: the whole workstation live — GPUs and who uses them, experiments, logs.

Three layers, each in its own module: tui.live keeps the data fresh (workers, events, polls),
tui.actions acts on experiments and says which commands apply where, and this one lays the screen
out and wires the selection to the log pane, the filter and the other screens.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from ptdesk.core.stats import StatsSampler
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from ptdesk.tui.actions import ExperimentActions
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.gpu_panel import GpuPanel
from ptdesk.tui.widgets.log_pane import LogPane

FOLLOW_DELAY = 0.3  # wait for the cursor to rest before opening a log stream


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class PtdeskApp(ExperimentActions):
    CSS_PATH = "app.tcss"
    TITLE = "ptdesk"
    BINDINGS = [
        Binding("n", "new", "New"),
        Binding("i", "details", "Details"),
        Binding("c", "copy", "Copy"),
        Binding("s", "stop_start", "Stop/Start"),
        Binding("d", "remove", "Remove"),
        Binding("l", "logs", "Logs"),
        Binding("p", "pause_log", "Pause"),
        Binding("f", "find_in_log", "Find"),
        Binding("slash", "filter", "Filter"),
        Binding("k", "collaborators", "Collab"),
        Binding("question_mark", "help", "Help"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, ws: Workstation, *, clock: Callable[[], float] = time.time, hostname: str | None = None,
                 stats: StatsSampler | None = None, watch_events: bool = True) -> None:
        super().__init__(ws, stats=stats, watch_events=watch_events)
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self._follow_timer = None

    # --- layout ------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static(id="banner")
        yield GpuPanel(id="gpu-panel")
        yield Input(placeholder="filter experiments by name, owner, kind, status… (escape closes)", id="filter")
        yield ExperimentsTable(clock=self.clock, id="experiments")
        yield Static(id="empty")
        yield LogPane(id="logs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#gpu-panel", GpuPanel).border_title = "GPUs"
        self.query_one("#experiments", ExperimentsTable).border_title = "Experiments"
        self.query_one("#filter", Input).display = False
        self.query_one("#banner").display = False
        self.state_changed()
        self._empty_line()
        self.query_one("#experiments").focus()
        self.start_feeds()

    def on_unmount(self) -> None:
        self.stop_feeds()
        # Also reached when the screen never came up: look for the pane without assuming it.
        for screen in self.screen_stack:
            for pane in screen.query(LogPane):
                pane.stop()

    def state_changed(self) -> None:
        """The top bar: host, engine, experiments, GPUs."""
        engine = (f"Docker {self.engine_info.version}" if self.engine_info and self.engine_up
                  else "Docker: unreachable" if self.engine_up is False else "Docker: connecting…")
        running = sum(1 for e in self.experiments if e.status == "running")
        gpus = "GPUs: N/A" if self.gpu_count is None else _count(self.gpu_count, "GPU")
        text = Text.assemble(("ptdesk ", "bold"), f"· {self.hostname} · {engine} · ",
                             f"{_count(len(self.experiments), 'experiment')} ({running} running) · {gpus}",
                             (f" · instance {self.ws.config.instance}" if self.ws.config.instance != "default"
                              else "", "dim"))
        self.query_one("#topbar", Static).update(text)

    def list_shown(self) -> None:
        self._empty_line()
        self._follow_selected()

    def _empty_line(self) -> None:
        empty = self.query_one("#empty", Static)
        show = self.listed and not self.experiments
        empty.display = show
        if show:
            empty.update(Text("No experiments yet. Press n to start a Jupyter or SSH container.", style="italic"))

    # --- selection and logs ------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#experiments")
    def _highlighted(self) -> None:
        if self._follow_timer is not None:
            self._follow_timer.stop()
        self._follow_timer = self.set_timer(FOLLOW_DELAY, self._follow_selected)

    @on(DataTable.RowSelected, "#experiments")
    def _selected(self) -> None:
        self.action_details()

    def _follow_selected(self) -> None:
        selected = self.table.selected
        if selected is None:
            self.log_pane.follow(None, None, "", False)
            return
        engine = None
        if self.engine_up:
            try:
                engine = self.ws.engine  # connected already: no I/O here
            except PtdeskError:
                engine = None
        self.log_pane.follow(engine, selected.id or None, selected.name, selected.status == "running")

    def action_logs(self) -> None:
        self.screen.maximize(self.log_pane)

    def action_pause_log(self) -> None:
        self.log_pane.toggle_pause()

    def action_find_in_log(self) -> None:
        self.log_pane.open_filter()

    # --- the filter and escape ---------------------------------------------------------------------
    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_back(self) -> None:
        """Escape: clear the filter, close the log search, or the maximized log — whichever is open."""
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        if self.log_pane.close_filter():
            self.table.focus()
            return
        field = self.query_one("#filter", Input)
        if field.display:
            # Escape drops the filter too: a hidden filter would silently hide experiments.
            field.value = ""
            field.display = False
            self.table.focus()
