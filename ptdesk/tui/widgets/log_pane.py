"""The log pane: follows the selected container, pausable, with a filter; memory stays bounded.

The filter belongs to the container it was typed for: selecting another one clears it. Enter
applies it and closes the field (the screen puts focus back on the dashboard); while not paused
the view stays at the newest line, also after the filter changes.

The pane keeps the last MAX_LINES lines itself (so a new filter or a resume can redraw them) and
the Log widget is bounded the same way. Lines arrive as LogBatch messages from the Workstation's
log stream thread; switching to another container closes the old stream first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Log, Static

from ptdesk.core.workstation import Workstation

if TYPE_CHECKING:
    from ptdesk.core.engine.logs import LogBatch, LogStream

MAX_LINES = 2000
# Lines of one batch written to the screen: at thousands of lines a second nobody reads them all,
# and drawing them costs the key presses their latency. The pane still keeps them (for the filter).
DRAW_PER_BATCH = 200
TAIL = 200  # lines of history shown when a container is selected


@dataclass
class LogLines(Message):
    stream: LogStream  # the stream they came from: a batch from a stream already left is dropped
    batch: LogBatch


class LogPane(Vertical):
    ALLOW_MAXIMIZE = True  # `l` shows the log full-screen

    def __init__(self, ws: Workstation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws  # the workstation of the log shown (follow() says which)
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.stream: LogStream | None = None
        self.container: str | None = None
        self.name_shown = ""
        self.paused = False
        self.unseen = 0
        self.skipped = 0
        self.state = "no container selected"
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Static(id="log-title")
        yield Input(placeholder="show only lines containing… (enter applies, escape clears)",
                    id="log-filter")
        yield Log(max_lines=MAX_LINES, highlight=False, id="log")

    def on_mount(self) -> None:
        self.query_one("#log-filter", Input).display = False
        self._title()

    # --- following ---------------------------------------------------------------------------
    def follow(self, ws: Workstation, container_id: str | None, name: str, running: bool, engine_up: bool) -> None:
        """Show `name`'s log (its last TAIL lines, then new ones while it runs) from `ws`, the
        workstation it runs on. Only an engine that is up and connected already is asked: this
        runs on the UI thread, where a connection attempt could hang."""
        if container_id == self.container and self.stream and not self.stream.closed:
            return
        self.stop()
        self.ws = ws
        if container_id != self.container:
            self.clear_filter()  # typed for the log it was looking at, not for the next one
        self.container, self.name_shown = container_id, name
        self.lines.clear()
        self.unseen = self.skipped = 0
        self.query_one(Log).clear()
        if container_id is None or not (engine_up and self.ws.engine_connected):
            self.state = "no container" if container_id is None else "engine unreachable"
            self._title()
            return
        # A stopped container's stream gives its last lines and ends; the title then says so.
        self.state = "following" if running else "last lines"
        pane = self
        holder: list[LogStream] = []

        def deliver(batch: LogBatch) -> None:
            pane.post_message(LogLines(holder[0], batch))

        # The die event closes the stream; the liveness check is only a slow fallback for a hung follow.
        stream = self.ws.log_stream(container_id, on_batch=deliver, tail=TAIL, max_lines=MAX_LINES,
                                    is_alive=lambda: self.ws.container_running(container_id),
                                    alive_check_after=10.0)
        holder.append(stream)
        self.stream = stream.start()
        self._title()

    def show_kept(self, ws: Workstation, name: str, lines: list[str],
                  state: str = "kept log (the job has ended)") -> None:
        """Lines that come from no stream: an ended job's log, kept in the person's home after its
        container went (ptdesk.core.jobs), or none yet for a queued request (`state` says which)."""
        self.stop()
        if name != self.name_shown:
            self.clear_filter()
        self.ws, self.container, self.name_shown = ws, None, name
        self.lines.clear()
        self.lines.extend(lines)
        self.unseen = self.skipped = 0
        self.state = state
        self._redraw()
        self._title()

    def stop(self, reason: str | None = None) -> None:
        if self.stream is not None:
            self.stream.close(reason)
            self.stream = None

    def container_died(self, container_id: str) -> None:
        """`follow` can hang after the container exits: end it on the engine's die event."""
        if container_id == self.container and self.stream is not None:
            self.stream.close("the container stopped")

    @on(LogLines)
    def _on_lines(self, message: LogLines) -> None:
        if message.stream is not self.stream:
            return  # a batch from a stream we already left
        batch = message.batch
        self.skipped += batch.dropped
        self.lines.extend(batch.lines)
        if self.paused:
            self.unseen += len(batch.lines)
        else:
            shown = [self._shown(line) for line in batch.lines if self._match(line)]
            hidden = batch.dropped + max(0, len(shown) - DRAW_PER_BATCH)
            shown = shown[-DRAW_PER_BATCH:]
            if hidden and not self.filter_text:
                shown.insert(0, f"… {hidden} lines skipped (written faster than they can be shown)")
            if shown:
                self.query_one(Log).write_lines(shown)
        if batch.ended:
            self.state = f"ended: {batch.reason}" if batch.reason else "ended"
            self.stream = None
        self._title()

    # --- pause and filter ----------------------------------------------------------------------
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.unseen = 0
            self._redraw()
        self._title()

    def open_filter(self) -> None:
        field = self.query_one("#log-filter", Input)
        field.value = self.filter_text
        field.display = True
        field.focus()

    @on(Input.Submitted, "#log-filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        # Not stopped: the screen hears it and puts focus back where its keys work.
        self.set_filter(event.value)
        self.close_filter()

    @on(Input.Changed, "#log-filter")
    def _live_filter(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    def set_filter(self, text: str) -> None:
        if text == self.filter_text:
            return
        self.filter_text = text
        self._redraw()
        self._title()

    def close_filter(self) -> bool:
        """Hide the filter's field (the filter stays); False when it was not open."""
        field = self.query_one("#log-filter", Input)
        if not field.display:
            return False
        field.display = False
        return True

    def clear_filter(self) -> bool:
        """Drop the filter and close its field; False when there was nothing to clear."""
        closed = self.close_filter()
        had = bool(self.filter_text)
        with self.query_one("#log-filter", Input).prevent(Input.Changed):
            self.query_one("#log-filter", Input).value = ""
        self.set_filter("")
        return closed or had

    def _match(self, line: str) -> bool:
        return not self.filter_text or self.filter_text.lower() in line.lower()

    def _shown(self, line: str) -> str:
        """A line as drawn: with a filter, one whose match lies past the pane's right edge starts
        just before the match ("…" in front), so the reason it is listed is always in view."""
        if not self.filter_text:
            return line
        at = line.lower().find(self.filter_text.lower())
        room = max(20, self.size.width - 2)
        if at < 0 or at + len(self.filter_text) <= room:
            return line
        return "…" + line[max(0, at - 10):]

    def _redraw(self) -> None:
        log = self.query_one(Log)
        log.clear()
        log.write_lines([self._shown(line) for line in self.lines if self._match(line)])
        # Following means the newest line is in view, after a redraw too. The Log widget cannot
        # tell: clear() keeps the old scroll offset, so it thinks the view is not at the end and
        # would stop following for good.
        if not self.paused:
            log.scroll_end(animate=False, immediate=True, x_axis=False)

    def _title(self) -> None:
        parts = [f"Logs: {self.name_shown}" if self.name_shown else "Logs", self.state]
        if self.paused:
            parts.append(f"PAUSED ({self.unseen} new)")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text!r}")
        if self.skipped:
            parts.append(f"{self.skipped} lines skipped")
        # Plain Text: a filter or a reason from the engine must not be read as markup.
        self.query_one("#log-title", Static).update(Text(" · ".join(parts)))
