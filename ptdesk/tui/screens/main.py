"""The main screen: the whole workstation live — GPUs and who uses them, experiments, logs.

It lays out the top bar, the engine banner, the GPU panel, the filter, the experiments table,
the empty-state line, the log pane and the footer; it owns the keys that act on them (the "main"
actions of tui.actions: no other screen has them) and its live feeds (tui.live), whose messages
it draws. Actions on an experiment go through the Workstation in a background job (tui.jobs).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Log, Static
from textual.worker import Worker, WorkerState

from ptdesk.core.models import Experiment
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings
from ptdesk.tui.errors import ErrorNotices, describe, notify_error
from ptdesk.tui.format import count as _count
from ptdesk.tui.format import removal_note
from ptdesk.tui.jobs import JobDone, run_job
from ptdesk.tui.live import FEEDS, LiveFeeds
from ptdesk.tui.messages import (
    ContainerChanged,
    EngineChanged,
    ExperimentsListed,
    GpusSampled,
    StatsRead,
    while_running,
)
from ptdesk.tui.screens.collaborators import Collaborators
from ptdesk.tui.screens.confirm import Confirm
from ptdesk.tui.screens.details import Details, stopped_copy_note
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.shell import open_shell, shell_refusal
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.gpu_panel import GpuPanel
from ptdesk.tui.widgets.log_pane import LogPane

FOLLOW_DELAY = 0.3  # wait for the cursor to rest before opening a log stream
GONE_EVENTS = frozenset({"die", "stop", "kill", "oom", "destroy"})


class MainScreen(Screen[None]):
    BINDINGS = bindings("main")
    # Escape is action_back's (one thing at a time, focus back on the table), not Textual's own
    # minimize, which would leave focus in the log and the log filter open.
    ESCAPE_TO_MINIMIZE = False
    notices: ErrorNotices  # made on mount (it notifies through the app), before any feed starts

    def __init__(self, ws: Workstation, *, clock: Callable[[], float] = time.time, hostname: str | None = None,
                 watch_events: bool = True) -> None:
        super().__init__()
        self.ws = ws
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.feeds = LiveFeeds(ws, self, watch_events=watch_events)
        # What the feeds said last, as shown.
        self.engine_up: bool | None = None  # None: not known yet
        self.engine_version: str | None = None
        self.gpu_count: int | None = None
        self.experiments: tuple[Experiment, ...] = ()
        self.listed = False  # the first list arrived (tests and the empty-state line use it)
        self.gpu_samples = 0
        self._follow_timer: Timer | None = None
        self._select_next: str | None = None  # the experiment to select once its row is there
        self._driver_noted: set[str] = set()  # experiments whose driver warning was shown (once each)

    # --- layout ------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static(id="banner")
        yield GpuPanel(id="gpu-panel")
        yield Input(placeholder="filter experiments by name, owner, kind, status… (escape closes)", id="filter")
        yield ExperimentsTable(clock=self.clock, id="experiments")
        yield Static(id="empty")
        yield LogPane(self.ws, id="logs")
        # Compact, and without the palette's own entry (ctrl+p is in the help): at 80 columns the
        # footer reaches `k` and `/`, at 100 every key the table lists; `?` comes first in any case.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.notices = ErrorNotices(self.app)
        self.query_one(GpuPanel).border_title = "GPUs"
        self.table.border_title = "Experiments"
        self.query_one("#filter", Input).display = False
        self.query_one("#banner").display = False
        self._top_bar()
        self._empty_line()
        self.table.focus()
        # Only the list reads at once (its rows are what a person waits for); the other feeds wait
        # for it (tui.live), so the first paint competes with one thread, not five.
        self.feeds.start()

    def on_unmount(self) -> None:
        self.feeds.stop()
        # The children may be gone already (or never came up): look for the pane without assuming it.
        for pane in self.query(LogPane):
            pane.stop()

    @property
    def table(self) -> ExperimentsTable:
        return self.query_one(ExperimentsTable)

    @property
    def log_pane(self) -> LogPane:
        return self.query_one(LogPane)

    def _top_bar(self) -> None:
        """Host, engine, experiments, GPUs."""
        engine = (f"Docker {self.engine_version}" if self.engine_version and self.engine_up
                  else "Docker: unreachable" if self.engine_up is False else "Docker: connecting…")
        running = sum(1 for e in self.experiments if e.status == "running")
        gpus = "GPUs: N/A" if self.gpu_count is None else _count(self.gpu_count, "GPU")
        instance = self.ws.config.instance
        text = Text.assemble(("ptdesk ", "bold"), f"· {self.hostname} · {engine} · ",
                             f"{_count(len(self.experiments), 'experiment')} ({running} running) · {gpus}",
                             (f" · instance {instance}" if instance != "default" else "", "dim"))
        self.query_one("#topbar", Static).update(text)

    def _banner(self, text: str | None) -> None:
        banner = self.query_one("#banner", Static)
        if text is not None:
            banner.update(Text(text, style="bold"))
        banner.display = text is not None

    def _empty_line(self) -> None:
        empty = self.query_one("#empty", Static)
        show = self.listed and not self.experiments
        empty.display = show
        if show:
            empty.update(Text("No experiments yet. Press n to start one.", style="italic"))

    # --- what the feeds say ------------------------------------------------------------------------
    @on(GpusSampled)
    @while_running
    def _gpus_sampled(self, message: GpusSampled) -> None:
        self.notices.recovered("gpus")
        self.gpu_samples += 1
        snapshot = message.view.snapshot
        self.query_one(GpuPanel).show(message.view)
        count = len(snapshot.physical) if snapshot.available else None
        if count != self.gpu_count:
            self.gpu_count = count
            self._top_bar()

    @on(EngineChanged)
    @while_running
    def _engine_changed(self, message: EngineChanged) -> None:
        was = self.engine_up
        self.engine_up = message.up
        if message.version:
            self.engine_version = message.version
        if message.up:
            self._banner(None)
            if was is False:
                self.notify("The Docker engine is back.", title="Engine")
        else:
            self._banner(f"Docker engine unreachable: {message.reason or 'no answer'} Retrying by itself; "
                         "the GPU panel stays live and the table shows the last known state.")
            self.log_pane.stop("the engine went away")
        self._top_bar()

    @on(ContainerChanged)
    @while_running
    def _container_changed(self, message: ContainerChanged) -> None:
        if message.action in GONE_EVENTS:
            self.log_pane.container_died(message.container_id)

    @on(ExperimentsListed)
    @while_running
    def _listed(self, message: ExperimentsListed) -> None:
        if message.items is None:
            if message.error is not None and self.engine_up:
                self.notices.report("list", message.error, title="Listing experiments")
            return
        self.notices.recovered("list")
        self.experiments = message.items
        self.listed = True
        self.table.set_experiments(message.items)
        self._select_pending()
        self._driver_notices(message.items)
        self._top_bar()
        self._empty_line()
        self._follow_selected()

    def _driver_notices(self, items: tuple[Experiment, ...]) -> None:
        """The driver sentence, once per experiment (the details keep it; the table marks it)."""
        for e in items:
            warning = e.environment.driver_warning if e.environment else None
            if warning and e.name not in self._driver_noted:
                self._driver_noted.add(e.name)
                self.notify(warning, title=f"{e.name}: GPU driver", severity="warning", timeout=20, markup=False)

    @on(StatsRead)
    @while_running
    def _stats_read(self, message: StatsRead) -> None:
        self.notices.recovered("stats")
        self.table.set_stats(message.stats)

    @on(JobDone)
    @while_running
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    @while_running
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that crashed (a bug, or a cause outside ptdesk) is reported; a feed keeps going."""
        if event.state != WorkerState.ERROR:
            return
        group = event.worker.group
        error = event.worker.error or RuntimeError("worker failed")
        if group not in FEEDS:
            notify_error(self.app, error, title=f"Background task {group}")
            return
        restart = self.feeds.restart(group)
        if restart is None:
            return
        if group != "events":
            self.notices.report(group, error, title=f"Background task {group}")
            return
        # Until the watcher runs again, nothing releases what vanished containers held.
        if restart.fresh:
            self.notices.recovered("events")
        self.notices.report("events", error, title="Watching the engine")
        self._banner(f"Not following the Docker engine's events: {describe(error)[0]} Trying again in "
                     f"{restart.delay:.0f} s; until then what vanished containers held is not released.")

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
            self.log_pane.follow(None, "", False, bool(self.engine_up))
            return
        self.log_pane.follow(selected.id or None, selected.name, selected.status == "running",
                             bool(self.engine_up))

    # --- the filter --------------------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    @on(Input.Submitted, "#log-filter")
    def _filter_done(self) -> None:
        self._focus_dashboard()

    def _focus_dashboard(self) -> None:
        """Focus where the screen's keys act: the table (or the log, while it has the whole screen),
        never a field that would swallow the next `n` as text."""
        if self.maximized is self.log_pane:
            self.log_pane.query_one(Log).focus()
        else:
            self.table.focus()

    # --- the actions (tui.actions, scope "main") ---------------------------------------------------
    def _need_selected(self) -> Experiment | None:
        selected = self.table.selected
        if selected is None:
            self.notify("Select an experiment first (or press n for a new one).", severity="warning")
        return selected

    def _act(self, title: str, job: Callable[[], object], done: str) -> None:
        """Run `job` in the background; say `done` or the error, then read the list again."""

        def finished(_result: object) -> None:
            self.notify(done, markup=False)
            self.feeds.request_list()

        def failed(error: BaseException) -> None:
            notify_error(self.app, error, title=title)
            self.feeds.request_list()

        run_job(self, job, title=title, on_done=finished, on_error=failed, group="action")

    def action_new(self) -> None:
        def closed(experiment: Experiment | None) -> None:
            # The new experiment is what the person looks at next: select its row once it is listed.
            self._select_next = experiment.name if experiment is not None else None
            self._select_pending()
            self.feeds.request_list()

        self.app.push_screen(NewExperiment(self.ws), closed)

    def _select_pending(self) -> None:
        if self._select_next is not None and self.table.select_name(self._select_next):
            self._select_next = None

    def action_details(self) -> None:
        if (selected := self._need_selected()) is not None:
            self.app.push_screen(Details(selected))

    def action_copy(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if selected.status != "running":
            self.notify(stopped_copy_note(selected), severity="warning", markup=False)
            return
        if not selected.connect:
            self.notify(f"{selected.name} has no connect line.", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(selected.connect)
        self.notify(f"Copied: {selected.connect}", markup=False)

    def action_shell(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if (refusal := shell_refusal(selected)) is not None:
            self.notify(refusal, severity="warning", markup=False)
            return
        name = selected.name
        # The command line is read in the background (it asks the engine); the shell runs here.
        run_job(self, lambda: self.ws.ssh_argv(name), title=f"Shell in {name}",
                on_done=lambda argv: self._shell(name, argv), group="shell")

    def _shell(self, name: str, argv: list[str]) -> None:
        # Nothing draws the log while the shell has the terminal: its batches would only pile up.
        self.log_pane.stop()
        open_shell(self.app, name, argv)
        self._follow_selected()

    def action_stop_start(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        name = selected.name
        if selected.status == "running":
            self.notify(f"Stopping {name}…", markup=False)
            self._act(f"Stopping {name}", lambda: self.ws.stop(name), f"{name} stopped.")
        else:
            self.notify(f"Starting {name} (waiting until it accepts logins)…", markup=False)
            self._act(f"Starting {name}", lambda: self.ws.start(name), f"{name} is running.")

    def action_remove(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        name = selected.name

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._act(f"Removing {name}", lambda: self.ws.remove(name, force=True), f"{name} removed.")

        self.app.push_screen(Confirm(f"Remove {name}?", removal_note(selected)), confirmed)

    def action_collaborators(self) -> None:
        selected = self.table.selected
        self.app.push_screen(Collaborators(self.ws, selected.name if selected and selected.kind == "ssh" else None))

    def action_logs(self) -> None:
        self.maximize(self.log_pane)

    def action_pause_log(self) -> None:
        self.log_pane.toggle_pause()

    def action_filter_log(self) -> None:
        self.log_pane.open_filter()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_back(self) -> None:
        """Escape, one thing at a time: the filter being typed in (log or experiments), the
        full-screen log, a log filter still applied, the experiments filter. Focus ends on the
        dashboard."""
        field = self.query_one("#filter", Input)
        if self.log_pane.query_one("#log-filter", Input).display:
            self.log_pane.clear_filter()
        elif self.maximized is not None and not field.has_focus:
            self.minimize()
        elif (field.has_focus or not self.log_pane.clear_filter()) and field.display:
            # Escape drops the filter too: a hidden filter would silently hide experiments.
            field.value = ""
            field.display = False
        self._focus_dashboard()
