"""What to do with a stopped experiment whose GPUs were let go and taken: `s` on its row asks.

The same choices as `ptdesk start NAME --gpus any:N | none | --queue`: other free GPUs, as many as it
had (the experiment is re-created on them with everything installed in it), no GPU (work on code or
data meanwhile), or the GPU queue. Dismissed with "auto" (the caller makes it any:N), "none",
"queue", or None (cancel).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

CHOICES = (("auto", "Other GPUs (a)", "primary"), ("none", "No GPU (n)", "default"),
           ("queue", "Queue (w)", "default"), ("cancel", "Cancel (c)", "default"))


class GpusGone(ModalScreen[str | None]):
    # Four choices side by side in the 72-column dialog, at 80x24 too.
    DEFAULT_CSS = """
    GpusGone .buttons Button { min-width: 10; margin-right: 1; }
    """
    BINDINGS = [("a", "choose('auto')", "Other GPUs"), ("n", "choose('none')", "No GPU"),
                ("w", "choose('queue')", "Queue"), ("c,escape", "choose('cancel')", "Cancel")]

    def __init__(self, name: str, why: str) -> None:
        super().__init__(classes="modal")
        self.experiment, self.why = name, why

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(f"The GPUs of {self.experiment} were taken", style="bold"), classes="dialog-title")
            yield Static(Text(f"{self.why}\nStart it on other free GPUs (everything installed in it comes along), "
                              "without a GPU, or wait in the queue for GPUs?"), classes="dialog-body")
            with Horizontal(classes="buttons"):
                for choice, label, variant in CHOICES:
                    yield Button(label, variant=variant, id=choice)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one("#auto", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id or "cancel")

    def action_choose(self, choice: str) -> None:
        self.dismiss(None if choice == "cancel" else choice)
