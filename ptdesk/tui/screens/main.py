"""The main screen: every workstation live — GPUs and who uses them, experiments, logs.

It lays out the top bar, the engine banner, the GPU panel, the filter, the experiments table,
the empty-state line, the log pane and the footer; it owns the keys that act on them (the "main"
actions of tui.actions: no other screen has them) and its live feeds (tui.live), whose messages
it draws: one set of feeds per workstation, whose results land in that workstation's BoxState
(tui.boxes). Actions on an experiment go through its own workstation's Workstation in a background
job (tui.jobs). With one workstation an engine that does not answer is a banner over everything;
with several, only that box's rows and GPU group say so, and the rest stays live.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Log, Static
from textual.worker import Worker, WorkerState

from ptdesk.core.base.models import Experiment, status_word
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings
from ptdesk.tui.boxes import Boxes, remembered
from ptdesk.tui.errors import ErrorNotices, describe, notify_error
from ptdesk.tui.jobs import JobDone
from ptdesk.tui.live import LiveFeeds
from ptdesk.tui.messages import (
    ContainerChanged,
    EngineChanged,
    ExperimentsListed,
    GpusSampled,
    StatsRead,
    while_running,
)
from ptdesk.tui.notices import POLL_EVERY, NoticeFeed
from ptdesk.tui.screens.experiment_actions import ExperimentActions
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.gpu_panel import GpuPanel
from ptdesk.tui.widgets.log_pane import LogPane

if TYPE_CHECKING:
    from ptdesk.core.fleet import Choice

FOLLOW_DELAY = 0.3  # wait for the cursor to rest before opening a log stream
GONE_EVENTS = frozenset({"die", "stop", "kill", "oom", "destroy"})


class MainScreen(ExperimentActions):
    BINDINGS = bindings("main")
    # Escape is action_back's (one thing at a time, focus back on the table), not Textual's own
    # minimize, which would leave focus in the log and the log filter open.
    ESCAPE_TO_MINIMIZE = False
    # The table has the focus from the start. Textual's default focuses the first focusable widget
    # (the filter, hidden on mount), and moving the focus to the table afterwards restyled both and
    # rebuilt the footer's keys: two more frames before the feeds could start.
    AUTO_FOCUS = "#experiments"
    notices: ErrorNotices  # made on mount (it notifies through the app), before any feed starts

    def __init__(self, workstations: Sequence[Workstation], *, clock: Callable[[], float] = time.time,
                 hostname: str | None = None, watch_events: bool = True,
                 choose: Callable[[str], Choice] | None = None) -> None:
        """`workstations`: the default one first (the form launches there, the top bar names its
        engine); `choose`: how the form's "auto" picks a workstation (Fleet.choose)."""
        super().__init__()
        self.choose = choose
        self.ws = workstations[0]
        self.workstations = {ws.name: ws for ws in workstations}
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.feeds = {ws.name: LiveFeeds(ws, self, watch_events=watch_events) for ws in workstations}
        # What the feeds said last, as shown, per workstation (config order).
        self.boxes = Boxes([ws.name for ws in workstations])
        self.gpu_samples = 0
        self._banner_of: str | None = None  # the workstation whose events watcher the banner is about
        self._follow_timer: Timer | None = None
        self._select_next: tuple[str, str] | None = None  # (experiment, workstation) to select once listed
        # (workstation, experiment) whose driver warning was shown (once each; names repeat across boxes)
        self._driver_noted: set[tuple[str, str]] = set()
        self._stopped_noted: set[str] = set()  # workstations whose stopped experiments were said

    # --- layout ------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static(id="banner")
        yield GpuPanel(tuple(self.workstations), id="gpu-panel")
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
        # The feeds start once the first frame is on the screen: their first calls import the Docker
        # SDK and wait for the engine, and a thread doing that would compete with painting it (one
        # GIL). Then the list reads at once (its rows are what a person waits for); the other feeds
        # wait for it (tui.live).
        self.call_after_refresh(self._first_frame_shown)
        self.notice_feed = NoticeFeed(self, self.ws)  # what ptdesk watch said to this person
        self.set_interval(POLL_EVERY, self.notice_feed.poll)

    def _first_frame_shown(self) -> None:
        self.app.first_frame_shown()  # type: ignore[attr-defined]
        self._start_feeds()

    def _start_feeds(self) -> None:
        for feeds in self.feeds.values():
            feeds.start()

    def on_unmount(self) -> None:
        for feeds in self.feeds.values():
            feeds.stop()
        # The children may be gone already (or never came up): look for the pane without assuming it.
        for pane in self.query(LogPane):
            pane.stop()

    # What tests and the empty-state line read: the default workstation's engine, every experiment.
    @property
    def engine_up(self) -> bool | None:
        return self.boxes[self.ws.name].engine_up

    @property
    def experiments(self) -> tuple[Experiment, ...]:
        return self.boxes.experiments()

    @property
    def listed(self) -> bool:
        return self.boxes.listed

    def _top_bar(self) -> None:
        width = (self.size.width or self.app.size.width) - 2  # the bar's padding (app.tcss)
        self.query_one("#topbar", Static).update(self.boxes.top_bar(self.hostname, self.ws.config.instance,
                                                                    self.ws.name, width=width))

    def on_resize(self) -> None:
        self._top_bar()  # what fits changed

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
        self.notices.recovered(f"gpus@{message.workstation}")
        self.gpu_samples += 1
        snapshot = message.view.snapshot
        self.query_one(GpuPanel).show(message.view, message.workstation)
        state = self.boxes[message.workstation]
        count = len(snapshot.physical) if snapshot.available else None
        if count != state.gpu_count:
            state.gpu_count = count
            self._top_bar()

    @on(EngineChanged)
    @while_running
    def _engine_changed(self, message: EngineChanged) -> None:
        state = self.boxes[message.workstation]
        was = state.engine_up
        state.engine_up, state.reason = message.up, None if message.up else (message.reason or "no answer")
        state.version = message.version or state.version
        several, where = self.boxes.several, f"{message.workstation}: " if self.boxes.several else ""
        if message.up and was is False:
            self.notify(f"{where}The Docker engine is back.", title="Engine", markup=False)
        if several:  # only that box's rows and GPU group say so; the others stay live
            self.query_one(GpuPanel).set_trouble(message.workstation, state.reason)
            self._show_rows()
            if not message.up and was is not False:
                self.notify(f"{where}Docker engine unreachable: {state.reason}", title="Engine",
                            severity="warning", markup=False)
            if message.up and self._banner_of == message.workstation:
                self._banner(None)
        else:
            self._banner(None if message.up else f"Docker engine unreachable: {state.reason} Retrying by itself; "
                         "the GPU panel stays live and the table shows the last known state.")
        if not message.up and not state.listed and not state.experiments:  # down from the start
            state.experiments = remembered(self.workstations[message.workstation])
            self._show_rows()
        if not message.up and self.log_pane.ws.name == message.workstation:
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
            if message.error is not None and self.boxes[message.workstation].engine_up:
                self.notices.report(f"list@{message.workstation}", message.error, title="Listing experiments")
            return
        self.notices.recovered(f"list@{message.workstation}")
        state = self.boxes[message.workstation]
        state.experiments, state.listed = message.items, True
        self._show_rows()
        self._select_pending()
        self._driver_notices(message.workstation, message.items)
        self._stopped_notice(message.workstation, message.items)
        self._top_bar()
        self._empty_line()
        self._follow_selected()

    def _show_rows(self) -> None:
        self.table.set_experiments(self.boxes.rows(), self.boxes.unreachable(), self.boxes.several)

    def _driver_notices(self, workstation: str, items: tuple[Experiment, ...]) -> None:
        """The driver sentence, once per experiment (the details keep it; the table marks it)."""
        where = f" on {workstation}" if self.boxes.several else ""
        for e in items:
            warning = e.environment.driver_warning if e.environment else None
            if warning and (workstation, e.name) not in self._driver_noted:
                self._driver_noted.add((workstation, e.name))
                self.notify(warning, title=f"{e.name}{where}: GPU driver", severity="warning", timeout=20,
                            markup=False)

    def _stopped_notice(self, workstation: str, items: tuple[Experiment, ...]) -> None:
        """Once per workstation: own experiments that are stopped (after an engine restart or a reboot,
        the ones that did not come back by themselves), and how to start one."""
        stopped = [e.name for e in items if status_word(e.status) == "stopped" and not (e.foreign or e.unverified)]
        if stopped and workstation not in self._stopped_noted:
            self._stopped_noted.add(workstation)
            where = f" on {workstation}" if self.boxes.several else ""
            self.notify(f"{', '.join(stopped)}: select one and press s to start it.", markup=False, timeout=15,
                        title=f"{len(stopped)} stopped experiment(s){where}", severity="information")

    @on(StatsRead)
    @while_running
    def _stats_read(self, message: StatsRead) -> None:
        self.notices.recovered(f"stats@{message.workstation}")
        self.boxes[message.workstation].stats = message.stats
        self.table.set_stats(self.boxes.stats())

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
        owner = next(((f, feed) for f in self.feeds.values() if (feed := f.feed_of(group))), None)
        if owner is None:
            notify_error(self.app, error, title=f"Background task {group}")
            return
        feeds, feed = owner
        restart = feeds.restart(feed)
        if restart is None:
            return
        if feed != "events":
            self.notices.report(group, error, title=f"Background task {group}")
            return
        # Until the watcher runs again, nothing releases what vanished containers held.
        if restart.fresh:
            self.notices.recovered(group)
        self.notices.report(group, error, title="Watching the engine")
        where = f" of {feeds.name}" if self.boxes.several else ""
        self._banner_of = feeds.name
        self._banner(f"Not following the Docker engine's events{where}: {describe(error)[0]} Trying again in "
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
    def action_new(self) -> None:
        from ptdesk.tui.screens.new_experiment import NewExperiment  # on `n`: not before the first frame

        form = NewExperiment(self.ws, workstations=self.workstations, choose=self.choose)

        def closed(experiment: Experiment | None) -> None:
            # The new experiment is what the person looks at next: select its row once it is listed.
            self._select_next = (experiment.name, form.ws.name) if experiment is not None else None
            self._select_pending()
            self.feeds[form.ws.name].request_list()

        self.app.push_screen(form, closed)

    def _select_pending(self) -> None:
        if self._select_next is not None and self.table.select_name(*self._select_next):
            self._select_next = None

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
