"""A yes/no question before anything irreversible, and a choice between answers that both act."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    BINDINGS = [("y", "answer(True)", "Yes"), ("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, detail: str = "", yes: str = "Remove") -> None:
        super().__init__(classes="modal")
        self.question, self.detail, self.yes = question, detail, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question, style="bold"), classes="dialog-title")
            if self.detail:
                yield Static(Text(self.detail), classes="dialog-body")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class Choose(ModalScreen[str | None]):
    """A question with a few answers, each on its own key, and Cancel (n / escape): for a choice
    where both answers act, so neither hides behind "yes"."""

    def __init__(self, question: str, detail: str, choices: Sequence[tuple[str, str, str]]) -> None:
        """`choices`: (key, button label, value dismissed with)."""
        super().__init__(classes="modal")
        self.question, self.detail, self.choices = question, detail, tuple(choices)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question, style="bold"), classes="dialog-title")
            yield Static(Text(self.detail), classes="dialog-body")
            with Horizontal(classes="buttons"):
                for key, label, value in self.choices:
                    yield Button(f"{label} ({key})", variant="primary", id=f"choice-{value}")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "no" else (event.button.id or "").removeprefix("choice-"))

    def on_key(self, event: Key) -> None:
        chosen = {key: value for key, _label, value in self.choices}
        if event.key in chosen or event.key in ("n", "escape"):
            event.stop()
            self.dismiss(chosen.get(event.key))
