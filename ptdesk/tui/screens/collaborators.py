"""`k`: collaborators — who, key fingerprint, age, where granted — with grant, revoke and rotate.

Every action runs in a background job (tui.jobs) and ends in a report of what happened per
container; the list is read again after each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ptdesk.core.models import Collaborator, RotationResult
from ptdesk.core.workstation import Workstation
from ptdesk.tui import format as fmt
from ptdesk.tui.errors import notify_error
from ptdesk.tui.jobs import JobDone, run_job
from ptdesk.tui.screens.confirm import Confirm
from ptdesk.tui.screens.prompt import Prompt, Report


def rotation_table(result: RotationResult) -> Table:
    """Per-container outcome of a rotation: where the new key works and the old one is refused."""
    table = Table(box=None, padding=(0, 2), title=Text(f"{result.old_fingerprint} -> {result.fingerprint}"))
    for column in ("Experiment", "Status", "Verified", "Detail"):
        table.add_column(column)
    for item in result.containers:
        style = {"rotated": "green", "pending": "yellow", "failed": "bold red"}.get(item.status, "")
        table.add_row(Text(item.name), Text(item.status, style=style),
                      Text("yes" if item.verified else "no", style="green" if item.verified else "yellow"),
                      Text(item.detail))
    if not result.containers:
        table.add_row("(no grants)", "", "", "")
    return table


class Collaborators(Screen[None]):
    BINDINGS = [("escape,q", "app.pop_screen", "Back"), ("a", "add", "Add"), ("g", "grant", "Grant"),
                ("x", "revoke", "Revoke"), ("r", "rotate", "Rotate key"), ("R", "reload", "Reload")]

    def __init__(self, ws: Workstation, experiment: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.experiment = experiment  # the one selected on the main screen: the default to grant
        self.items: dict[str, Collaborator] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="collab"):
            yield Static("Collaborators", classes="dialog-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="collab-table")
            yield Static(id="collab-note")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("name", "Name"), ("fingerprint", "Fingerprint"), ("age", "Age"),
                           ("expires", "Expires"), ("grants", "Access to")):
            table.add_column(label, key=key)
        self.action_reload()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    # --- loading ---------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self._load()

    def _load(self) -> None:
        run_job(self, self.ws.collaborators, title="Loading collaborators", on_done=self._loaded,
                group="collab-load")

    def _loaded(self, items: list[Collaborator]) -> None:
        table = self.query_one(DataTable)
        now = time.time()
        chosen = self.selected  # the person the next key press acts on stays selected after a reload
        self.items = {c.name: c for c in items}
        with self.app.batch_update():
            table.clear()
            for c in items:
                expires = fmt.duration(c.expires - now) if c.expires else "never"
                table.add_row(Text(c.name), Text(c.fingerprint), fmt.duration(now - c.created), expires,
                              Text(", ".join(c.grants) or "-"), key=c.name)
            if chosen is not None and chosen.name in self.items:
                table.move_cursor(row=table.get_row_index(chosen.name))
        note = self.query_one("#collab-note", Static)
        note.update(Text("No collaborators yet: press a to add one." if not items else
                         "a add · g grant · x revoke · r rotate key · escape back", style="dim"))

    @property
    def selected(self) -> Collaborator | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.items.get(key or "")

    # --- actions -----------------------------------------------------------------------------------
    def _run(self, title: str, job: Callable[[], Any], render: Callable[[Any], Any]) -> None:
        """Run `job` in the background; show `render(result)` in a report (or the error), reload."""

        def done(result: Any) -> None:
            self.app.push_screen(Report(title, render(result)))
            self._load()

        def failed(error: BaseException) -> None:
            notify_error(self.app, error, title=title)
            self._load()

        run_job(self, job, title=title, on_done=done, on_error=failed, group="collab-action")

    def action_add(self) -> None:
        def got(name: str | None) -> None:
            if name:
                self._run(f"Add {name}", lambda: self.ws.add_collaborator(name),
                          lambda c: Text(f"{c.name} added with key {c.fingerprint}.\n"
                                         f"Their key pair: {c.identity_file or 'their own key'}"))

        self.app.push_screen(Prompt("Name of the new collaborator", placeholder="bob"), got)

    def action_grant(self) -> None:
        person = self.selected
        if person is None:
            self.notify("Add a collaborator first (a).", severity="warning")
            return

        def got(experiment: str | None) -> None:
            if experiment:
                self._run(f"Grant {person.name} → {experiment}",
                          lambda: self.ws.grant(person.name, experiment),
                          lambda added: Text(f"{person.name} can now log in to {experiment}." if added
                                             else f"{person.name} already had access to {experiment}."))

        self.app.push_screen(Prompt(f"Grant {person.name} access to which SSH experiment?",
                                    value=self.experiment or ""), got)

    def action_revoke(self) -> None:
        person = self.selected
        if person is None or not person.grants:
            self.notify("The selected collaborator has no access to revoke.", severity="warning")
            return

        def got(experiment: str | None) -> None:
            if experiment:
                self._run(f"Revoke {person.name} ✗ {experiment}",
                          lambda: self.ws.revoke(person.name, experiment),
                          lambda ended: Text(f"{person.name} can no longer log in to {experiment}; "
                                             f"{ended.outcome()}."))

        self.app.push_screen(Prompt(f"Revoke {person.name}'s access to which experiment?",
                                    value=person.grants[0]), got)

    def action_rotate(self) -> None:
        person = self.selected
        if person is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run(f"Rotate {person.name}'s key", lambda: self.ws.rotate(person.name),
                          rotation_table)

        self.app.push_screen(Confirm(f"Rotate {person.name}'s key?",
                                     "A new key is installed everywhere they have access and checked by a "
                                     "real login before the old one is removed.", yes="Rotate"), confirmed)
