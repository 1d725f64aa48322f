"""Small modals: ask for a few lines of text and act on them; show a report.

A Prompt that was given a `submit` job runs it in the background and closes only when it worked:
an error is shown inside the dialog, what was typed stays, and focus goes to the input the error
was about (PtdeskError.field), so a typo is one correction away, not a whole dialog again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static

from ptdesk.errors import InvalidInput
from ptdesk.tui.errors import describe
from ptdesk.tui.jobs import JobDone, run_job

Values = dict[str, str]


@dataclass(frozen=True)
class Field:
    id: str  # also the PtdeskError.field that points at it
    label: str
    value: str = ""
    placeholder: str = ""
    suggestions: tuple[str, ...] = ()  # completed as typed (right arrow accepts)


class Prompt(ModalScreen[Any]):
    """Dismissed with submit's result (or the typed values without a submit); None on cancel."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "", *,
                 fields: Sequence[Field] = (), submit: Callable[[Values], object] | None = None,
                 note: str = "", empty: str = "") -> None:
        super().__init__(classes="modal")
        self.question, self.note, self.submit = question, note, submit
        self.empty = empty  # said when the first input is empty; "": nothing typed, nothing to do
        self.fields = tuple(fields) or (Field("answer", "", value, placeholder),)
        self.busy = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Static(Text(self.question, style="bold"), classes="dialog-title")
            if self.note:
                yield Static(Text(self.note), classes="dialog-body dim")
            for f in self.fields:
                if f.label:
                    yield Label(f.label)
                yield Input(f.value, placeholder=f.placeholder, id=f.id, select_on_focus=False,
                            suggester=SuggestFromList(f.suggestions) if f.suggestions else None)
            yield Static(id="prompt-error")
            with Horizontal(classes="buttons"):
                yield Button("OK (enter)", variant="primary", id="ok", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    def values(self) -> Values:
        return {f.id: self.query_one(f"#{f.id}", Input).value.strip() for f in self.fields}

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._ok()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self._ok() if event.button.id == "ok" else self.action_cancel()

    def _ok(self) -> None:
        values = self.values()
        if self.busy:
            return
        if not values[self.fields[0].id]:  # the first input is what is asked for
            if self.empty:  # said, and an older error (about what was typed before) goes
                self._failed(InvalidInput(self.empty, field=self.fields[0].id))
            return
        if self.submit is None:
            self.dismiss(values[self.fields[0].id] if len(self.fields) == 1 else values)
            return
        self.busy = True
        self.query_one("#prompt-error", Static).update(Text("Working…", style="dim"))
        submit = self.submit
        run_job(self, lambda: submit(values), title=self.question, on_done=self.dismiss, on_error=self._failed,
                group="prompt")

    def _failed(self, error: BaseException) -> None:
        self.busy = False
        cause, hint = describe(error)
        self.query_one("#prompt-error", Static).update(Text(f"{cause}\n{hint or ''}".strip(), style="bold red"))
        wanted = getattr(error, "field", None)
        target = next((i for i in self.query(Input) if i.id == wanted), None) or self.query(Input).first()
        target.focus()
        target.cursor_position = len(target.value)
        # A form taller than the terminal (the job form at 80x24) has its error below the last field:
        # brought into view after focus has scrolled to the field, or Enter seems to do nothing.
        self.call_after_refresh(self.query_one("#prompt-error", Static).scroll_visible, animate=False)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Report(ModalScreen[None]):
    BINDINGS = [("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, body: RenderableType) -> None:
        super().__init__(classes="modal")
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(self.body)
            yield Static(Text("escape closes", style="dim"))
