"""`k`: collaborators — who, key fingerprint, age, where granted — with add, grant, revoke,
rotate, export and remove (the "collab" actions of tui.actions; `?` lists them).

Every action runs in a background job (tui.jobs) and ends in a report of what happened; the list
is read again after each. An action that asks something first runs inside its dialog (tui.screens
.prompt): an error stays there, with what was typed, until it works or is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ptdesk.core.access.accounts import Ended
from ptdesk.core.base.people_models import Collaborator, RotationResult
from ptdesk.core.collaborators.export import Exported
from ptdesk.core.workstation import Workstation
from ptdesk.tui import format as fmt
from ptdesk.tui.actions import bindings
from ptdesk.tui.errors import notify_error
from ptdesk.tui.jobs import JobDone, run_job
from ptdesk.tui.screens.confirm import Choose, Confirm
from ptdesk.tui.screens.prompt import Field, Prompt, Report, Values
from ptdesk.tui.widgets.columns import add_keyed_columns


def export_report(name: str, exported: Exported) -> Text:
    """What was written, the CLI's warnings word for word, and how the person uses it."""
    text = Text()
    for path in exported.paths:
        text.append(f"{path}\n")
    for warning in exported.warnings:
        text.append(f"Warning: {warning}\n", style="bold yellow")
    text.append(f"{name}: copy the folder to their machine, then: ssh -F <that folder>/ssh_config HOST "
                f"(hosts: {', '.join(exported.hosts)})")
    return text


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
    SCOPE = "collab"
    BINDINGS = bindings("collab")

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
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        add_keyed_columns(self.query_one(DataTable), (
            ("name", "Name"), ("fingerprint", "Fingerprint"), ("age", "Age"), ("expires", "Expires"),
            ("grants", "Access to")))
        self.action_reload()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    # --- loading ---------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self._load()

    def _load(self) -> None:
        ws = self.ws

        def read() -> tuple[list[Collaborator], dict[str, tuple[str, ...]]]:
            people = ws.collaborators()
            return people, {c.name: ws.pending_grants(c.name) for c in people}

        run_job(self, read, title="Loading collaborators", on_done=self._loaded, group="collab-load")

    def _loaded(self, loaded: tuple[list[Collaborator], dict[str, tuple[str, ...]]]) -> None:
        items, pending = loaded
        table = self.query_one(DataTable)
        now = time.time()
        chosen = self.selected  # the person the next key press acts on stays selected after a reload
        self.items = {c.name: c for c in items}
        with self.app.batch_update():
            table.clear()
            for c in items:
                expires = (Text("expired", style="bold red") if c.expired(now) else
                           fmt.duration(c.expires - now) if c.expires else "never")
                # At 80 columns the whole fingerprint would take most of the line: its start is enough
                # to tell people apart (the full one is in the add, rotate and export reports).
                shown = c.fingerprint if self.size.width >= 120 else c.fingerprint[:19] + "…"
                # `*`: a key rotation is pending there, as `ptdesk collab ls` marks it.
                where = ", ".join(g + ("*" if g in pending.get(c.name, ()) else "") for g in c.grants)
                table.add_row(Text(c.name), Text(shown), fmt.duration(now - c.created), expires,
                              Text(where or "-"), key=c.name)
            if chosen is not None and chosen.name in self.items:
                table.move_cursor(row=table.get_row_index(chosen.name))
        note = self.query_one("#collab-note", Static)
        keys = "a add · g grant · x revoke · r rotate key · e export · d remove · ? keys"
        if any(pending.values()):
            keys = f"* a key rotation is pending there: r finishes it. {keys}"
        note.update(Text("No collaborators yet: press a to add one." if not items else keys, style="dim"))

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

    def _ask(self, title: str, prompt: Prompt, render: Callable[[Any], Any]) -> None:
        """`prompt` does the work itself (errors stay in it); what it returns is reported here."""

        def done(result: Any) -> None:
            if result is not None:
                self.app.push_screen(Report(title, render(result)))
            self._load()

        self.app.push_screen(prompt, done)

    def action_add(self) -> None:
        def add(v: Values) -> Collaborator:
            key = self.ws.public_key_from_file(v["pubkey"]) if v["pubkey"] else None
            return self.ws.add_collaborator(v["name"], key, v["expires"] or None)

        fields = (Field("name", "Name", placeholder="bob"),
                  Field("pubkey", "Their public key file (empty: ptdesk makes a key pair)",
                        placeholder="/path/to/id_ed25519.pub"),
                  Field("expires", "Expires (empty: never)", placeholder="30d, 1.5h, 2w or YYYY-MM-DD"))
        self._ask("Add a collaborator", Prompt("Add a collaborator", fields=fields, submit=add),
                  lambda c: Text(f"{c.name} added with key {c.fingerprint}.\n"
                                 f"Their key pair: {c.identity_file or 'their own key'}"))

    def action_grant(self) -> None:
        person = self.selected
        if person is None:
            self.notify("Add a collaborator first (a).", severity="warning")
            return
        name = person.name

        def grant(v: Values) -> tuple[str, bool]:
            return v["answer"], self.ws.grant(name, v["answer"])

        def ask(offered: list[str]) -> None:
            choices = [e for e in offered if e not in person.grants]
            note = f"Your SSH experiments here: {', '.join(choices)}" if choices else \
                "No SSH experiment of yours to grant yet: launch one (n on the main screen)."
            value = self.experiment if self.experiment in choices else (choices[0] if choices else "")
            self._ask(f"Grant {name}", Prompt(f"Grant {name} access to which SSH experiment?", note=note,
                                              fields=(Field("answer", "", value, suggestions=tuple(choices)),),
                                              submit=grant),
                      lambda r: Text(f"{name} can now log in to {r[0]}." if r[1]
                                     else f"{name} already had access to {r[0]}."))

        run_job(self, lambda: [r.name for r in self.ws.store.experiments() if r.kind == "ssh"],
                title=f"Grant {name}", on_done=ask, group="collab-action")

    def action_export(self) -> None:
        person = self.selected
        if person is None:
            self.notify("Add a collaborator first (a).", severity="warning")
            return
        name = person.name
        fields = (Field("folder", "Folder to write into (made if missing)", str(Path.cwd() / f"ptdesk-{name}")),
                  Field("dest", "Where they will keep it on their machine (empty: ~/.ptdesk/NAME)"),
                  Field("jump", "Jump host (empty: none)", placeholder="user@bastion[:port]"))
        self._ask(f"Export {name}", Prompt(f"Export {name}'s key and ssh config", fields=fields,
                                          submit=lambda v: self.ws.export_collaborator(
                                              name, v["folder"], v["dest"] or None, v["jump"] or None)),
                  lambda exported: export_report(name, exported))

    def action_remove(self) -> None:
        person = self.selected
        if person is None:
            return
        name = person.name

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run(f"Remove {name}", lambda: self.ws.remove_collaborator(name),
                          lambda _: Text(f"{name} was removed; their keys no longer open anything."))

        where = ", ".join(person.grants) or "no experiment"
        self.app.push_screen(Confirm(f"Remove {name}?", f"Their access to {where} ends now, with their sessions.",
                                     yes="Remove"), confirmed)

    def action_revoke(self) -> None:
        person = self.selected
        if person is None or not person.grants:
            self.notify("The selected collaborator has no access to revoke.", severity="warning")
            return
        name = person.name

        def revoke(v: Values) -> tuple[str, Ended]:
            return v["answer"], self.ws.revoke(name, v["answer"])

        self._ask(f"Revoke {name}", Prompt(f"Revoke {name}'s access to which experiment?", value=person.grants[0],
                                           submit=revoke),
                  lambda done: Text(f"{name} can no longer log in to {done[0]}; {done[1].outcome()}."))

    def action_rotate(self) -> None:
        """Ask routine or compromised, saying first what of theirs runs (what the second would end)."""
        person = self.selected
        if person is None:
            return
        name = person.name
        run_job(self, lambda: self.ws.running_processes(name), title=f"Rotate {name}'s key",
                on_done=lambda running: self._ask_rotation(name, running), group="collab-action")

    def _ask_rotation(self, name: str, running: dict[str, tuple[str, ...]]) -> None:
        rows = [f"  {experiment}: {row}" for experiment, found in running.items() for row in found]
        shown = rows[:6] + ([f"  … and {len(rows) - 6} more"] if len(rows) > 6 else [])
        ending = (f"ends their sessions and the {len(rows)} process(es) of theirs running now:\n" + "\n".join(shown)
                  if rows else "ends their sessions (nothing of theirs runs now).")
        detail = ("A new key is installed everywhere they have access and checked by a real login before the old "
                  "one is removed.\nRoutine (a new laptop, a schedule): what they run keeps running.\n"
                  f"Compromised key: also {ending}")

        def chosen(answer: str | None) -> None:
            if answer is None:
                return
            end, person = answer == "end", self.items.get(name)
            if person is not None and not person.identity_file:  # their own key: they bring the new one
                self._ask(f"Rotate {name}'s key", Prompt(
                    f"{name}'s new public key file (.pub)", placeholder="/path/to/new_key.pub",
                    submit=lambda v: self.ws.rotate(name, pubkey_text=self.ws.public_key_from_file(v["answer"]),
                                                    end_sessions=end)), rotation_table)
                return
            self._run(f"Rotate {name}'s key", lambda: self.ws.rotate(name, end_sessions=end), rotation_table)

        self.app.push_screen(Choose(f"Rotate {name}'s key?", detail,
                                    [("r", "Routine", "keep"), ("e", "Compromised: end them", "end")]), chosen)
