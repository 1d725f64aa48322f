"""The dashboard: the whole workstation live — GPUs and who uses them, experiments, logs.

Nothing here talks to Docker or NVML: thread workers call ptdesk.core (through tui.feeds) and post
the immutable results back as messages. Each poller schedules its next run only after it finished
(set_timer, never set_interval), so a slow engine never piles polls up. The experiment list
follows the engine's event stream (lifecycle.EventWatcher), plus a slow safety refresh.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from ptdesk.core.desk import Desk
from ptdesk.core.models import Experiment
from ptdesk.core.stats import ContainerStats, StatsSampler
from ptdesk.errors import PtdeskError
from ptdesk.tui import feeds
from ptdesk.tui.errors import notify_error
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.gpu_panel import GpuPanel
from ptdesk.tui.widgets.log_pane import LogPane

GPU_INTERVAL = 1.0
NO_GPU_INTERVAL = 5.0  # without NVML there is nothing to animate; the sampler retries init every 30 s
STATS_INTERVAL = 2.0
# Bindings that act on the main screen's selection (everything but help and quit).
MAIN_SCREEN_ACTIONS = frozenset({"new", "details", "copy", "stop_start", "remove", "logs", "pause_log",
                                 "find_in_log", "filter", "collaborators"})
SAFETY_REFRESH = 15.0  # the event stream drives the list; this only catches what it cannot say
FOLLOW_DELAY = 0.3  # wait for the cursor to rest before opening a log stream


# --- messages from the workers ------------------------------------------------------------------
class GpusSampled(Message):
    def __init__(self, view: feeds.GpuView) -> None:
        super().__init__()
        self.view = view


class ExperimentsListed(Message):
    def __init__(self, items: tuple[Experiment, ...] | None, error: PtdeskError | None = None) -> None:
        super().__init__()
        self.items, self.error = items, error


class StatsRead(Message):
    def __init__(self, stats: dict[str, ContainerStats]) -> None:
        super().__init__()
        self.stats = stats


class EngineChanged(Message):
    def __init__(self, up: bool, reason: str | None, info: feeds.EngineInfo | None = None) -> None:
        super().__init__()
        self.up, self.reason, self.info = up, reason, info


class ContainerEvent(Message):
    def __init__(self, action: str, container_id: str, name: str) -> None:
        super().__init__()
        self.action, self.container_id, self.name = action, container_id, name


class ActionDone(Message):
    def __init__(self, text: str | None, error: BaseException | None = None) -> None:
        super().__init__()
        self.text, self.error = text, error


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class PtdeskApp(App[None]):
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

    def __init__(self, desk: Desk, *, clock: Callable[[], float] = time.time, hostname: str | None = None,
                 stats: StatsSampler | None = None, watch_events: bool = True) -> None:
        super().__init__()
        self.desk = desk
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.stats_sampler = stats or StatsSampler()
        self.watch_events = watch_events
        self.engine_up: bool | None = None  # None: not known yet
        self.engine_info: feeds.EngineInfo | None = None
        self.engine_reason: str | None = None
        self.gpu_count: int | None = None
        self.experiments: tuple[Experiment, ...] = ()
        self.listed = False  # the first list arrived (tests and the empty-state line use it)
        self.gpu_samples = 0
        self._stop = threading.Event()
        self._list_running = False
        self._list_again = False
        self._follow_timer = None
        self._stats_polling = False

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
        self._topbar()
        self._empty_line()
        self.query_one("#experiments").focus()
        # First engine/NVML calls happen in workers: the screen is up before any of them answers.
        self._sample_gpus()
        self._start_engine_watch()
        self.set_timer(SAFETY_REFRESH, self._safety_refresh)

    def on_unmount(self) -> None:
        self._stop.set()
        # Also reached when the screen never came up: look for the pane without assuming it.
        for screen in self.screen_stack:
            for pane in screen.query(LogPane):
                pane.stop()

    @property
    def table(self) -> ExperimentsTable:
        return self.query_one("#experiments", ExperimentsTable)

    @property
    def log_pane(self) -> LogPane:
        return self.query_one(LogPane)

    def _topbar(self) -> None:
        engine = (f"Docker {self.engine_info.version}" if self.engine_info and self.engine_up
                  else "Docker: unreachable" if self.engine_up is False else "Docker: connecting…")
        running = sum(1 for e in self.experiments if e.status == "running")
        gpus = "GPUs: N/A" if self.gpu_count is None else _count(self.gpu_count, "GPU")
        text = Text.assemble(("ptdesk ", "bold"), f"· {self.hostname} · {engine} · ",
                             f"{_count(len(self.experiments), 'experiment')} ({running} running) · {gpus}",
                             (f" · instance {self.desk.config.instance}" if self.desk.config.instance != "default"
                              else "", "dim"))
        self.query_one("#topbar", Static).update(text)

    def _empty_line(self) -> None:
        empty = self.query_one("#empty", Static)
        show = self.listed and not self.experiments
        empty.display = show
        if show:
            empty.update(Text("No experiments yet. Press n to start a Jupyter or SSH container.", style="italic"))

    # --- GPUs --------------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="gpus")
    def _sample_gpus(self) -> None:
        # Until the engine's state is known, try it: owners show from the very first sample.
        self.post_message(GpusSampled(feeds.sample_gpus(self.desk, self.engine_up is not False)))

    @on(GpusSampled)
    def _gpus_sampled(self, message: GpusSampled) -> None:
        self.gpu_samples += 1
        snapshot = message.view.snapshot
        count = len(snapshot.physical) if snapshot.available else None
        self.query_one(GpuPanel).show(message.view)
        if count != self.gpu_count:
            self.gpu_count = count
            self._topbar()
        self.set_timer(GPU_INTERVAL if snapshot.available else max(GPU_INTERVAL, NO_GPU_INTERVAL),
                       self._sample_gpus)

    # --- the engine and its events -----------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="events")
    def _start_engine_watch(self) -> None:
        if not self.watch_events:
            self._engine_changed_from_thread(True, None)
            return
        from ptdesk.core.lifecycle import ContainerEvent as CoreEvent

        def on_event(event: CoreEvent) -> None:
            self.post_message(ContainerEvent(event.action, event.container_id, event.name))

        feeds.watch_events(self.desk, on_event, self._engine_changed_from_thread, self._stop)

    def _engine_changed_from_thread(self, up: bool, reason: str | None) -> None:
        info = None
        if up:
            try:
                info = feeds.engine_info(self.desk)
            except PtdeskError as exc:
                up, reason = False, exc.message
        self.post_message(EngineChanged(up, reason, info))

    @on(EngineChanged)
    def _engine_changed(self, message: EngineChanged) -> None:
        was = self.engine_up
        self.engine_up, self.engine_reason = message.up, message.reason
        if message.info:
            self.engine_info = message.info
        banner = self.query_one("#banner", Static)
        if message.up:
            banner.display = False
            if was is False:
                self.notify("The Docker engine is back.", title="Engine")
            self.request_list()
            if not self._stats_polling:
                self._stats_polling = True
                self._poll_stats()
        else:
            banner.update(Text(f"Docker engine unreachable: {message.reason or 'no answer'} Retrying by itself; "
                               "the GPU panel stays live and the table shows the last known state.",
                               style="bold"))
            banner.display = True
            self.log_pane.stop("the engine went away")
        self._topbar()

    @on(ContainerEvent)
    def _container_event(self, message: ContainerEvent) -> None:
        if message.action in ("die", "stop", "kill", "oom", "destroy"):
            self.log_pane.container_died(message.container_id)
        if message.action not in ("exec_create", "exec_start", "exec_die", "top", "attach"):
            self.request_list()

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
            self.post_message(ExperimentsListed(feeds.list_experiments(self.desk)))
        except PtdeskError as exc:
            self.post_message(ExperimentsListed(None, exc))

    @on(ExperimentsListed)
    def _listed(self, message: ExperimentsListed) -> None:
        self._list_running = False
        if message.items is not None:
            self.experiments = message.items
            self.listed = True
            self.table.set_experiments(message.items)
            self._empty_line()
            self._topbar()
            self._follow_selected()
        elif message.error is not None and self.engine_up:
            notify_error(self, message.error, title="Listing experiments")
        if self._list_again:
            self._list_again = False
            self.request_list()

    # --- per-container CPU/memory ------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="stats")
    def _poll_stats(self) -> None:
        self.post_message(StatsRead(feeds.container_stats(self.stats_sampler, self.experiments)))

    @on(StatsRead)
    def _stats_read(self, message: StatsRead) -> None:
        self.table.set_stats(message.stats)
        if self.engine_up:
            self.set_timer(STATS_INTERVAL, self._poll_stats)
        else:
            self._stats_polling = False  # resumes when the engine is back

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that crashed (a bug) is reported and its poll keeps going."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error or RuntimeError("worker failed")
        notify_error(self, error, title=f"Background task {event.worker.group}")
        retry = {"gpus": (GPU_INTERVAL, self._sample_gpus), "stats": (STATS_INTERVAL, self._poll_stats)}
        if event.worker.group in retry:
            delay, job = retry[event.worker.group]
            self.set_timer(delay, job)
        elif event.worker.group == "list":
            self._list_running = False

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
                engine = self.desk.engine  # connected already: no I/O here
            except PtdeskError:
                engine = None
        self.log_pane.follow(engine, selected.id or None, selected.name, selected.status == "running")

    # --- actions -----------------------------------------------------------------------------------
    def _need_selected(self) -> Experiment | None:
        selected = self.table.selected
        if selected is None:
            self.notify("Select an experiment first (or press n for a new one).", severity="warning")
        return selected

    def action_new(self) -> None:
        from ptdesk.tui.screens.new_experiment import NewExperiment

        def closed(experiment: Experiment | None) -> None:
            self.request_list()

        self.push_screen(NewExperiment(self.desk), closed)

    def action_details(self) -> None:
        from ptdesk.tui.screens.details import Details

        if (selected := self._need_selected()) is not None:
            self.push_screen(Details(selected))

    def action_copy(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if not selected.connect:
            self.notify(f"{selected.name} has no connect line (is it running?).", severity="warning", markup=False)
            return
        self.copy_to_clipboard(selected.connect)
        self.notify(f"Copied: {selected.connect}", markup=False)

    def action_stop_start(self) -> None:
        from ptdesk.core import experiments

        selected = self._need_selected()
        if selected is None:
            return
        if selected.status == "running":
            self.notify(f"Stopping {selected.name}…", markup=False)
            self._act(lambda: experiments.stop(self.desk, selected.name), f"{selected.name} stopped.")
        else:
            self.notify(f"Starting {selected.name} (waiting until it accepts logins)…", markup=False)
            self._act(lambda: experiments.start(self.desk, selected.name), f"{selected.name} is running.")

    def action_remove(self) -> None:
        from ptdesk.core import experiments
        from ptdesk.tui.screens.confirm import Confirm

        selected = self._need_selected()
        if selected is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._act(lambda: experiments.remove(self.desk, selected.name, force=True),
                          f"{selected.name} removed.")

        self.push_screen(Confirm(f"Remove {selected.name}?",
                                 "The container, its port, GPUs, keys and token go away; the workspace "
                                 f"folder stays{': ' + selected.workspace if selected.workspace else ''}."),
                         confirmed)

    @work(thread=True, exit_on_error=False, group="action")
    def _act(self, job: Callable[[], object], done: str) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - PtdeskErrors and bugs alike become a notification
            self.post_message(ActionDone(None, exc))
            return
        self.post_message(ActionDone(done))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        if message.error is not None:
            notify_error(self, message.error)
        elif message.text:
            self.notify(message.text, markup=False)
        self.request_list()

    def action_logs(self) -> None:
        self.screen.maximize(self.log_pane)

    def action_pause_log(self) -> None:
        self.log_pane.toggle_pause()

    def action_find_in_log(self) -> None:
        self.log_pane.open_filter()

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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys act on the selected experiment: on any other screen (the
        collaborators list, a dialog) they are off, so `d` there never removes an experiment."""
        return not (action in MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1)

    def action_back(self) -> None:
        """Escape: close the filter, the log search, or the maximized log — whichever is open."""
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        if self.log_pane.close_filter():
            self.table.focus()
            return
        field = self.query_one("#filter", Input)
        if field.display:
            field.display = False
            self.table.focus()

    def action_collaborators(self) -> None:
        from ptdesk.tui.screens.collaborators import Collaborators

        selected = self.table.selected
        self.push_screen(Collaborators(self.desk, selected.name if selected and selected.kind == "ssh" else None))

    def action_help(self) -> None:
        from ptdesk.tui.screens.help import Help

        self.push_screen(Help())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New experiment", "Start a Jupyter or SSH container", self.action_new)
        yield SystemCommand("Experiment details", "Connect line, host key, limits, GPUs", self.action_details)
        yield SystemCommand("Copy connect line", "ssh command or Jupyter URL of the selection", self.action_copy)
        yield SystemCommand("Stop or start", "Stop the selected experiment, or start it", self.action_stop_start)
        yield SystemCommand("Remove experiment", "Remove the selection (asks first)", self.action_remove)
        yield SystemCommand("Logs full-screen", "Follow the selected experiment's log", self.action_logs)
        yield SystemCommand("Collaborators", "Grant, revoke, rotate keys", self.action_collaborators)
        yield SystemCommand("Filter experiments", "Show only matching rows", self.action_filter)
        yield SystemCommand("Keys", "What every key does", self.action_help)
