"""The dashboard route: what `ptdesk watch` said to this person shows here as a notice, and the
terminal raises it too (OSC 9 / OSC 777 / BEL, as `ptdesk notify terminal` chose).

The notify package (its routes, the journal, who is logged in) is imported by the first poll, a
poll interval after the dashboard opened: not before its first frame."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ptdesk.core.base import clock

if TYPE_CHECKING:
    from textual.screen import Screen

    from ptdesk.core.workstation import Workstation

URGENT = frozenset({"oom", "cull", "engine", "reservation", "driver"})  # shown as warnings
POLL_EVERY = 2.0  # seconds: one small file read


class NoticeFeed:
    """Shows notices newer than the dashboard's start, each once."""

    def __init__(self, screen: Screen, ws: Workstation) -> None:
        self.screen = screen
        self.ws = ws
        self.after = clock.now()  # what was said before the dashboard opened is not replayed
        self.style: str | None = None  # how the terminal is raised: read by the first poll
        self.alerts: list[str] = []  # the sequences written to the terminal, newest last

    def poll(self) -> None:
        from ptdesk.core.notify.terminal import alert_sequence

        if self.style is None:
            from ptdesk.core.notify.herald import person_home
            from ptdesk.core.notify.terminal import terminal_style

            self.style = terminal_style(person_home(self.ws.config))
        for entry in self.ws.notices(self.after):
            self.after = max(self.after, float(entry["time"]))
            title, body = str(entry.get("title", "")), str(entry.get("body", ""))
            self.screen.notify(body, title=title, markup=False, timeout=30,
                               severity="warning" if entry.get("event") in URGENT else "information")
            self._alert(alert_sequence(self.style, title, body, in_tmux=bool(os.environ.get("TMUX"))))

    def _alert(self, sequence: str) -> None:
        if not sequence:
            return
        self.alerts.append(sequence)
        # Textual has no public call for raw output besides bell(); its driver writes to the terminal.
        driver = getattr(self.screen.app, "_driver", None)
        if driver is not None and hasattr(driver, "write"):
            driver.write(sequence)
