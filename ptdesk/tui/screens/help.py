"""What every key does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("n", "new experiment (Jupyter or SSH) with good defaults"),
    ("enter / i", "details of the selected experiment: connect line, host key, limits, GPUs"),
    ("c", "copy the selected experiment's ssh command or Jupyter URL"),
    ("s", "stop the selected experiment, or start it when it is stopped"),
    ("d", "remove the selected experiment (asks first)"),
    ("l", "logs full-screen (escape returns)"),
    ("p", "pause / resume the log"),
    ("f", "filter the log lines"),
    ("/", "filter the experiments"),
    ("k", "collaborators: grant, revoke, rotate keys"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("ctrl+q", "quit (containers keep running)"),
)


class Help(ModalScreen[None]):
    BINDINGS = [("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="modal")

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(classes="dialog wide"):
            yield Static("Keys", classes="dialog-title")
            yield Static(table)
            yield Static("The GPU panel keeps updating while the Docker engine is away; the rest "
                         "catches up by itself when it returns.", classes="dim")
