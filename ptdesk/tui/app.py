"""The dashboard application: it opens the main screen and keeps only the app-wide keys.

Everything the person looks at and acts on is a screen: the main view (tui.screens.main, with its
own keys and live feeds), and the screens it opens. Keys, footer labels, palette entries and the
help screen all come from the one action table (tui.actions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.screen import Screen

from ptdesk import collector
from ptdesk.config import LOCAL
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings, palette_commands
from ptdesk.tui.live import FEEDS
from ptdesk.tui.screens.help import Help
from ptdesk.tui.screens.main import MainScreen

if TYPE_CHECKING:
    from ptdesk.core.fleet import Choice

JOB_THREADS = 8  # actions, form jobs, the log's look-ups: beside the feeds, never queued behind them


class PtdeskApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "ptdesk"
    BINDINGS = bindings("app")
    # The GPU panel's cells by width (app.tcss): below 100 columns only index, load and holder; the
    # sparkline from 140.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (140, "-wide")]

    def __init__(self, ws: Workstation | Sequence[Workstation], *, clock: Callable[[], float] = time.time,
                 hostname: str | None = None, watch_events: bool = True,
                 choose: Callable[[str], Choice] | None = None) -> None:
        """`ws`: the workstation, or every workstation with the default one first (one dashboard
        for all of them); `choose`: how the form's "auto" picks one (Fleet.choose)."""
        super().__init__()
        workstations = [ws] if isinstance(ws, Workstation) else list(ws)
        self.ws = workstations[0]
        self.main = MainScreen(workstations, clock=clock, hostname=hostname, watch_events=watch_events,
                               choose=choose)

    async def on_load(self) -> None:
        """Thread workers run on the event loop's default pool (cores + 4 threads: 6 here). Every
        feed holds one for the dashboard's life, so with that pool a second workstation's feeds,
        and every job, would wait for a thread that never frees: size it for all of them."""
        from concurrent.futures import ThreadPoolExecutor

        threads = len(FEEDS) * len(self.main.workstations) + JOB_THREADS
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(threads, thread_name_prefix="ptdesk-worker"))

    def first_frame_shown(self) -> None:
        """The main screen's first frame is on the terminal. A start-up with the collector off
        (ptdesk.commands.dashboard) turns it on: what the start-up made is frozen first (it lives
        as long as the app; the collector need not walk it again), what comes after is collected."""
        collector.start_up_done()

    def get_default_screen(self) -> Screen:
        """The main screen is the bottom of the stack: closing every other screen comes back to it."""
        return self.main

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette calls actions directly, past the bindings: offer the app's own everywhere,
        and the main screen's only when it was opened from there."""
        yield from super().get_system_commands(screen)
        yield from palette_commands("app", self)
        if isinstance(screen, MainScreen):
            yield from palette_commands("main", screen)
            yield from _experiment_jumps(screen)

    def action_help(self) -> None:
        """The keys of the screen `?` was pressed on (each screen carries its scope of the action table)."""
        if not isinstance(self.screen, Help):
            self.push_screen(Help(getattr(self.screen, "SCOPE", "main")))


def _experiment_jumps(screen: MainScreen) -> Iterable[SystemCommand]:
    """"Go to NAME" for every listed experiment: the palette finds a row by typing its name."""
    table = screen.table
    for key, experiment in list(table.experiments.items()):
        where = table.where.get(key, LOCAL)
        shown = f"{experiment.name} on {where}" if table.show_where else experiment.name
        yield SystemCommand(f"Go to {shown}", f"Select the experiment {shown}",
                            lambda name=experiment.name, where=where: table.select_name(name, where))
