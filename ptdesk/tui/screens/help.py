"""What every key does, from the one action table (tui.actions)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ptdesk.tui.actions import Scope, help_rows

TITLES = {"main": "Keys", "collab": "Keys on the collaborators screen", "reserve": "Keys on the reservations screen",
          "cull": "Keys on the idle cull screen", "app": "Keys"}


class Help(ModalScreen[None]):
    BINDINGS = [("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, scope: Scope = "main") -> None:
        super().__init__(classes="modal")
        self.scope = scope

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in help_rows(self.scope):
            table.add_row(key, Text(what))
        with VerticalScroll(classes="dialog wide"):
            yield Static(TITLES[self.scope], classes="dialog-title")
            yield Static(table)
            yield Static("The GPU panel keeps updating while the Docker engine is away; the rest "
                         "catches up by itself when it returns.", classes="dim")
