"""The main screen's live data: GPU samples, the engine and its events, the experiment list, CPU/memory.

LiveFeeds is an object the main screen owns, one per workstation: every message it posts names
its workstation, and its workers are grouped "FEED@WORKSTATION", so a slow or dead box's feeds
wait and fail on their own while the others' keep coming. Each feed runs in a thread worker of that screen and
posts its immutable results to it (tui.messages); the screen draws them. Nothing here touches a
widget. A poller waits until the screen has handled its last result, then its interval, before it
samples again: a slow engine or NVML never piles samples up, and neither does a busy screen or one
suspended while a shell has the terminal. The list follows the engine's event stream
(Workstation.watch_events), refreshed on request (requests during a refresh coalesce into one
more), plus a slow safety refresh. A feed whose worker crashes is started again by restart(), the
event watcher with backoff.

Rows first: the list feed reads at once, without waiting for the event watcher to say the engine
is up; the other feeds (NVML's init, the watcher's reconcile, the stats) wait for that first list
to be on screen, or FIRST_LIST_GRACE at most (an engine that hangs must not hold the GPU panel).
The stats are sampled right after it, and again STATS_FIRST_GAP later for a first CPU %.

The environment marks ("changed" packages) need an exec in every running container: the "env"
feed runs Workstation.check_environments() at a slow cadence, then asks for the list again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message
from textual.widget import Widget

from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from ptdesk.tui.feeds import HoldReader, IdleGpus, sample_gpus
from ptdesk.tui.messages import ContainerChanged, EngineChanged, ExperimentsListed, GpusSampled, StatsRead

if TYPE_CHECKING:
    from ptdesk.core.experiments.lifecycle import ContainerEvent

GPU_INTERVAL = 1.0
NO_GPU_INTERVAL = 5.0  # without NVML there is nothing to animate; the sampler retries init every 30 s
STATS_INTERVAL = 2.0
STATS_FIRST_GAP = 0.5  # CPU % needs two samples: the second comes this soon after the first list
FIRST_LIST_GRACE = 1.0
ENV_FIRST = 60.0  # the first environment check, once the start-up is long over
ENV_INTERVAL = 600.0  # then this often: each check runs pip in every running experiment
SAFETY_REFRESH = 15.0  # the event stream drives the list; this only catches what it cannot say
# The event watcher died (a bug, a store it cannot open): start it again soon, then less and less
# often while it keeps dying; one that ran this long before dying failed afresh.
EVENTS_RETRY_FIRST = 1.0
EVENTS_RETRY_MAX = 60.0
EVENTS_STABLE = 60.0
FEEDS = ("gpus", "stats", "list", "events", "env")  # the worker group of each feed
QUIET_EVENTS = frozenset({"exec_create", "exec_start", "exec_die", "top", "attach"})


@dataclass(frozen=True)
class Restart:
    """When a crashed feed runs again; `fresh`: it had worked for a good while (news, not a repeat)."""

    delay: float
    fresh: bool = False


class LiveFeeds:
    """Runs the feeds in `host`'s thread workers and posts their results to `host`."""

    def __init__(self, ws: Workstation, host: Widget, *, watch_events: bool = True) -> None:
        self.ws = ws
        self.name = ws.name  # the workstation every message names
        self.host = host
        self.watch_events = watch_events
        self.idle_gpus = IdleGpus(ws.idle_gpus)
        self.holds = HoldReader()  # the GPU panel's holds: a list every few seconds, inspects on change
        self.events_retry = EVENTS_RETRY_FIRST  # the next watcher restart's delay
        self._stop = threading.Event()
        self._list_wanted = threading.Event()
        self._list_wanted.set()  # the first list is read at once
        self._first_list = threading.Event()  # handed over (or failed): the other feeds may start
        # Written by the feeds' own threads, read by the others: plain values, swapped whole.
        self._engine_up: bool | None = None  # as the watcher last said; None: not known yet
        self._running: tuple[str, ...] = ()  # ids of the running containers, as last listed
        self._events_started = 0.0

    # --- start, stop, ask ----------------------------------------------------------------------
    def start(self) -> None:
        """Start every feed; the first engine/NVML calls happen in workers, after the screen is up."""
        for feed in FEEDS:
            self._run(feed)

    def stop(self) -> None:
        self._stop.set()
        self._list_wanted.set()  # wakes the list feed so it sees the stop

    def request_list(self) -> None:
        """Read the experiment list again soon (any thread)."""
        self._list_wanted.set()

    def group(self, feed: str) -> str:
        """The worker group of `feed` on this workstation."""
        return f"{feed}@{self.name}"

    def feed_of(self, group: str) -> str | None:
        """The feed a worker group is, when it is one of this workstation's."""
        feed, _, name = group.partition("@")
        return feed if name == self.name and feed in FEEDS else None

    def restart(self, feed: str) -> Restart | None:
        """`feed`'s worker crashed: run it again later. None while the dashboard closes."""
        if self._stop.is_set():
            return None
        if feed == "events":
            fresh = time.monotonic() - self._events_started > EVENTS_STABLE
            if fresh:
                self.events_retry = EVENTS_RETRY_FIRST
            restart = Restart(self.events_retry, fresh)
            self.events_retry = min(self.events_retry * 2, EVENTS_RETRY_MAX)
        else:
            # A crashed list is read again at the next request, as before the crash.
            restart = Restart({"gpus": GPU_INTERVAL, "stats": STATS_INTERVAL, "env": ENV_INTERVAL}.get(feed, 0.0))
        self.host.set_timer(restart.delay, lambda: self._run(feed))
        return restart

    def _run(self, feed: str) -> None:
        if self._stop.is_set():
            return  # a restart that came due while the dashboard was closing
        target = {"gpus": self._gpus, "stats": self._stats, "list": self._list, "events": self._events,
                  "env": self._environments}[feed]
        self.host.run_worker(target, thread=True, exit_on_error=False, group=self.group(feed),
                             name=f"feed {self.group(feed)}")

    # --- the feeds (each in its own thread) -----------------------------------------------------
    def _handed_over(self, message: Message) -> bool:
        """Post `message` to the host and wait until the host has handled it (a callback queued
        behind it has run). False when the host or the feeds are closing."""
        handled = threading.Event()
        if not (self.host.post_message(message) and self.host.call_later(handled.set)):
            return False
        while not handled.wait(0.5):
            if self._stop.is_set():
                return False
        return True

    def _rows_first(self) -> None:
        """Wait until the first list is on screen (bounded): the rows come before everything else."""
        self._first_list.wait(FIRST_LIST_GRACE)

    def _gpus(self) -> None:
        self._rows_first()
        while not self._stop.is_set():
            # Until the engine's state is known, try it: owners show from the very first sample.
            view = sample_gpus(self.ws, self._engine_up is not False, self.idle_gpus, self.holds)
            if not self._handed_over(GpusSampled(view, self.name)):
                return
            self._stop.wait(GPU_INTERVAL if view.snapshot.available else max(GPU_INTERVAL, NO_GPU_INTERVAL))

    def _stats(self) -> None:
        """CPU/memory/start time of the running containers, from cgroup files (no engine call):
        right after the first list, once more soon after (the first CPU %), then every interval."""
        self._rows_first()
        wait = 0.0
        while not self._stop.wait(wait):
            wait = STATS_FIRST_GAP if wait == 0.0 else STATS_INTERVAL
            # While the engine is away the table keeps the last figures.
            if self._engine_up is not False and not self._handed_over(
                    StatsRead(self.ws.container_stats(self._running), self.name)):
                return

    def _list(self) -> None:
        while not self._stop.is_set():
            asked = self._list_wanted.wait(SAFETY_REFRESH)
            if self._stop.is_set() or not (asked or self._engine_up):
                continue  # the safety refresh only runs while the engine answers
            self._list_wanted.clear()  # before reading: a request from now on reads once more
            try:
                items = tuple(self.ws.list_experiments(all=True))
                from ptdesk.core.job_desk import JobDesk  # the batch-job code, once there are job rows
                items += tuple(JobDesk(self.ws).ended_rows({e.name for e in items}))  # ended jobs: their records
            except PtdeskError as exc:
                listed = ExperimentsListed(None, exc, self.name)
            else:
                self._running = tuple(e.id for e in items if e.id and e.status == "running")
                listed = ExperimentsListed(items, workstation=self.name)
            handed = self._handed_over(listed)
            self._first_list.set()
            if not handed:
                return

    def _environments(self) -> None:
        """Refresh the environment marks now and then; the list shows them. A check the engine
        refuses is tried again next time (the marks stay as they were meanwhile)."""
        wait = ENV_FIRST
        while not self._stop.wait(wait):
            if not self._engine_up:
                wait = ENV_FIRST  # not known to be up (yet): look again soon, not in ten minutes
                continue
            wait = ENV_INTERVAL
            try:
                self.ws.check_environments()
            except PtdeskError:
                continue
            self.request_list()

    def _events(self) -> None:
        """Follow the engine's events until stopped: cleanup, reconnects and reconciliation are the
        core's (Workstation.watch_events); this passes what it sees on to the screen."""
        self._rows_first()  # the watcher's reconcile would compete with the first list
        self._events_started = time.monotonic()
        if not self.watch_events:
            self._engine_changed(True, None)
            return
        # The list after a reconcile comes from the engine up/down callbacks and the events. The
        # watcher has a Workstation of its own (store connection, engine client), closed by this
        # thread when it ends: its reconcile may still be reading the store when the dashboard
        # closes its own, and one SQLite connection closed under another thread's query crashes.
        own = self.ws.fork()
        try:
            own.watch_events(self._container_event, self._engine_changed, self._stop,
                             on_reconcile=lambda _report: None)
        finally:
            own.close()

    def _container_event(self, event: ContainerEvent) -> None:
        self.host.post_message(ContainerChanged(event.action, event.container_id, event.name, self.name))
        if event.action not in QUIET_EVENTS:
            self.request_list()

    def _engine_changed(self, up: bool, reason: str | None) -> None:
        version = None
        if up:
            try:
                version = self.ws.engine_version()
            except PtdeskError as exc:
                up, reason = False, exc.message
        self._engine_up = up
        self.host.post_message(EngineChanged(up, reason, version, self.name))
        if up:
            self.request_list()
