"""The dashboard's live data: GPU samples, the engine and its events, the experiment list, CPU/memory.

Nothing here talks to Docker or NVML: thread workers call ptdesk.core (through tui.feeds) and post
the immutable results back as messages. Each poller schedules its next run only after it finished
(set_timer, never set_interval), so a slow engine never piles polls up. The experiment list
follows the engine's event stream (lifecycle.EventWatcher), plus a slow safety refresh. A worker
that crashes is reported once (ErrorNotices) and started again, the event watcher with backoff.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from ptdesk.core.models import Experiment
from ptdesk.core.stats import StatsSampler
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from ptdesk.tui import feeds
from ptdesk.tui.errors import ErrorNotices, describe, notify_error
from ptdesk.tui.messages import ContainerEvent, EngineChanged, ExperimentsListed, GpusSampled, StatsRead
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.gpu_panel import GpuPanel
from ptdesk.tui.widgets.log_pane import LogPane

GPU_INTERVAL = 1.0
NO_GPU_INTERVAL = 5.0  # without NVML there is nothing to animate; the sampler retries init every 30 s
STATS_INTERVAL = 2.0
SAFETY_REFRESH = 15.0  # the event stream drives the list; this only catches what it cannot say
# The event watcher died (a bug, a store it cannot open): start it again soon, then less and less
# often while it keeps dying; one that ran this long before dying failed afresh.
EVENTS_RETRY_FIRST = 1.0
EVENTS_RETRY_MAX = 60.0
EVENTS_STABLE = 60.0
# Workers that run again and again: one failure each until they work again, not one per run.
RECURRING = frozenset({"gpus", "stats", "list", "events"})
QUIET_EVENTS = frozenset({"exec_create", "exec_start", "exec_die", "top", "attach"})
GONE_EVENTS = frozenset({"die", "stop", "kill", "oom", "destroy"})
M = TypeVar("M")


def while_running(handler: Callable[[App, M], None]) -> Callable[[App, M], None]:
    """For handlers of worker results: one that arrives while the app shuts down finds its widgets
    gone already, and is dropped rather than raising NoMatches on the way out."""

    @functools.wraps(handler)
    def guarded(app: App, message: M) -> None:
        if app.is_running:
            handler(app, message)

    return guarded


class LiveFeeds(App[None]):
    """The layer of PtdeskApp that keeps what the dashboard knows up to date, and shows it.

    PtdeskApp lays out the widgets (#topbar, #banner, GpuPanel, ExperimentsTable, LogPane), calls
    start_feeds() once they are mounted and stop_feeds() when it goes, and overrides the two hooks
    below to redraw what depends on this state.
    """

    def __init__(self, ws: Workstation, *, stats: StatsSampler | None = None, watch_events: bool = True) -> None:
        super().__init__()
        self.ws = ws
        self.stats_sampler = stats or StatsSampler()
        self.watch_events = watch_events
        self.engine_up: bool | None = None  # None: not known yet
        self.engine_info: feeds.EngineInfo | None = None
        self.gpu_count: int | None = None
        self.experiments: tuple[Experiment, ...] = ()
        self.listed = False  # the first list arrived (tests and the empty-state line use it)
        self.gpu_samples = 0
        self.idle_gpus = feeds.IdleGpus()
        self.notices = ErrorNotices(self)
        self._stop = threading.Event()
        self._list_running = False
        self._list_again = False
        self._stats_polling = False
        self._events_retry = EVENTS_RETRY_FIRST
        self._events_started = 0.0

    # --- hooks for PtdeskApp -----------------------------------------------------------------------
    def state_changed(self) -> None:
        """The engine, the GPU count or the experiments changed: redraw the summary."""

    def list_shown(self) -> None:
        """A new experiment list is in the table."""

    # --- start and stop ----------------------------------------------------------------------------
    def start_feeds(self) -> None:
        # First engine/NVML calls happen in workers: the screen is up before any of them answers.
        self._sample_gpus()
        self._start_engine_watch()
        self.set_timer(SAFETY_REFRESH, self._safety_refresh)

    def stop_feeds(self) -> None:
        self._stop.set()

    @property
    def table(self) -> ExperimentsTable:
        return self.query_one("#experiments", ExperimentsTable)

    @property
    def log_pane(self) -> LogPane:
        return self.query_one(LogPane)

    def _show_banner(self, text: str | None) -> None:
        banner = self.query_one("#banner", Static)
        if text is not None:
            banner.update(Text(text, style="bold"))
        banner.display = text is not None

    # --- GPUs --------------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="gpus")
    def _sample_gpus(self) -> None:
        # Until the engine's state is known, try it: owners show from the very first sample.
        self.post_message(GpusSampled(feeds.sample_gpus(self.ws, self.engine_up is not False, self.idle_gpus)))

    @on(GpusSampled)
    @while_running
    def _gpus_sampled(self, message: GpusSampled) -> None:
        self.notices.recovered("gpus")
        self.gpu_samples += 1
        snapshot = message.view.snapshot
        count = len(snapshot.physical) if snapshot.available else None
        self.query_one(GpuPanel).show(message.view)
        if count != self.gpu_count:
            self.gpu_count = count
            self.state_changed()
        self.set_timer(GPU_INTERVAL if snapshot.available else max(GPU_INTERVAL, NO_GPU_INTERVAL),
                       self._sample_gpus)

    # --- the engine and its events -----------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="events")
    def _start_engine_watch(self) -> None:
        if self._stop.is_set():
            return  # a retry that came due while the dashboard was closing
        self._events_started = time.monotonic()
        if not self.watch_events:
            self._engine_changed_from_thread(True, None)
            return
        from ptdesk.core.lifecycle import ContainerEvent as CoreEvent

        def on_event(event: CoreEvent) -> None:
            self.post_message(ContainerEvent(event.action, event.container_id, event.name))

        feeds.watch_events(self.ws, on_event, self._engine_changed_from_thread, self._stop)

    def _engine_changed_from_thread(self, up: bool, reason: str | None) -> None:
        info = None
        if up:
            try:
                info = feeds.engine_info(self.ws)
            except PtdeskError as exc:
                up, reason = False, exc.message
        self.post_message(EngineChanged(up, reason, info))

    @on(EngineChanged)
    @while_running
    def _engine_changed(self, message: EngineChanged) -> None:
        was = self.engine_up
        self.engine_up = message.up
        if message.info:
            self.engine_info = message.info
        if message.up:
            self._show_banner(None)
            if was is False:
                self.notify("The Docker engine is back.", title="Engine")
            self.request_list()
            if not self._stats_polling:
                self._stats_polling = True
                self._poll_stats()
        else:
            self._show_banner(f"Docker engine unreachable: {message.reason or 'no answer'} Retrying by itself; "
                              "the GPU panel stays live and the table shows the last known state.")
            self.log_pane.stop("the engine went away")
        self.state_changed()

    @on(ContainerEvent)
    @while_running
    def _container_event(self, message: ContainerEvent) -> None:
        if message.action in GONE_EVENTS:
            self.log_pane.container_died(message.container_id)
        if message.action not in QUIET_EVENTS:
            self.request_list()

    def _events_failed(self, error: BaseException) -> None:
        """The event watcher died: nothing releases what vanished containers held until it runs again."""
        if self._stop.is_set():
            return
        if time.monotonic() - self._events_started > EVENTS_STABLE:
            self._events_retry = EVENTS_RETRY_FIRST  # it had worked for a good while: a fresh problem
            self.notices.recovered("events")
        delay = self._events_retry
        self._events_retry = min(delay * 2, EVENTS_RETRY_MAX)
        self.notices.report("events", error, title="Watching the engine")
        self._show_banner(f"Not following the Docker engine's events: {describe(error)[0]} Trying again in "
                          f"{delay:.0f} s; until then what vanished containers held is not released.")
        self.set_timer(delay, self._start_engine_watch)

    # --- the experiment list -----------------------------------------------------------------------
    def request_list(self) -> None:
        """Refresh the list; requests during a refresh coalesce into one more refresh."""
        if self._list_running:
            self._list_again = True
            return
        self._list_running = True
        self._list_experiments()

    def _safety_refresh(self) -> None:
        if self.engine_up:
            self.request_list()
        self.set_timer(SAFETY_REFRESH, self._safety_refresh)

    @work(thread=True, exit_on_error=False, group="list")
    def _list_experiments(self) -> None:
        try:
            self.post_message(ExperimentsListed(feeds.list_experiments(self.ws)))
        except PtdeskError as exc:
            self.post_message(ExperimentsListed(None, exc))

    @on(ExperimentsListed)
    @while_running
    def _listed(self, message: ExperimentsListed) -> None:
        self._list_running = False
        if message.items is not None:
            self.notices.recovered("list")
            self.experiments = message.items
            self.listed = True
            self.table.set_experiments(message.items)
            self.state_changed()
            self.list_shown()
        elif message.error is not None and self.engine_up:
            self.notices.report("list", message.error, title="Listing experiments")
        if self._list_again:
            self._list_again = False
            self.request_list()

    # --- per-container CPU/memory ------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="stats")
    def _poll_stats(self) -> None:
        self.post_message(StatsRead(feeds.container_stats(self.stats_sampler, self.experiments)))

    @on(StatsRead)
    @while_running
    def _stats_read(self, message: StatsRead) -> None:
        self.notices.recovered("stats")
        self.table.set_stats(message.stats)
        if self.engine_up:
            self.set_timer(STATS_INTERVAL, self._poll_stats)
        else:
            self._stats_polling = False  # resumes when the engine is back

    # --- workers that crashed ----------------------------------------------------------------------
    @while_running
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that crashed (a bug, or a cause outside ptdesk) is reported and its feed keeps going."""
        if event.state != WorkerState.ERROR:
            return
        group = event.worker.group
        error = event.worker.error or RuntimeError("worker failed")
        if group == "events":
            self._events_failed(error)
            return
        if group in RECURRING:
            self.notices.report(group, error, title=f"Background task {group}")
        else:
            notify_error(self, error, title=f"Background task {group}")
        if group == "gpus":
            self.set_timer(GPU_INTERVAL, self._sample_gpus)
        elif group == "stats":
            self.set_timer(STATS_INTERVAL, self._poll_stats)
        elif group == "list":
            self._list_running = False
