"""`r`: GPU reservations of the selected experiment's workstation — a per-GPU timeline of the next
48 hours — with add, cancel (a future one) and end (a started one): the "reserve" actions of
tui.actions. Every change runs in a background job; the list is read again after each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ptdesk.core.base import clock
from ptdesk.core.gpu_desk import GpuDesk
from ptdesk.core.sharing.reservations import Reservation, zone
from ptdesk.core.workstation import Workstation
from ptdesk.tui.actions import bindings
from ptdesk.tui.errors import notify_error
from ptdesk.tui.jobs import JobDone, run_job
from ptdesk.tui.screens.confirm import Confirm
from ptdesk.tui.screens.prompt import Field, Prompt, Values
from ptdesk.tui.widgets.columns import add_keyed_columns

HORIZON = 48 * 3600.0
STATE_STYLE = {"active": "bold green", "future": "cyan"}


class Reservations(Screen[None]):
    SCOPE = "reserve"
    BINDINGS = bindings("reserve")

    def __init__(self, ws: Workstation) -> None:
        super().__init__()
        self.ws = ws
        self.desk = GpuDesk(ws)
        self.items: dict[str, Reservation] = {}
        self._loads = 0  # a load that finishes after a newer one started is stale: dropped

    def compose(self) -> ComposeResult:
        with Vertical(id="reservations"):
            # The zone is the workstation's (asked of its engine in the load job, not here on the UI thread).
            yield Static(f"GPU reservations on {self.ws.name}, next 48 h", classes="dialog-title",
                         id="reservations-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="reservations-table")
            yield Static(id="reservations-note")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        add_keyed_columns(self.query_one(DataTable), (
            ("gpu", "GPU"), ("when", "When"), ("owner", "Owner"), ("state", "State"), ("id", "Id")))
        self.action_reload()

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    def action_reload(self) -> None:
        self._loads += 1
        number = self._loads
        run_job(self, lambda: (number, self.desk.gpu_indices(), self.desk.reservations(),
                               zone(clock.now(), self.desk.time_zone())),
                title="Loading reservations", on_done=self._loaded, group="reserve-load")

    def _loaded(self, loaded: tuple[int, list[int], list[Reservation], str]) -> None:
        number, gpus, found, where = loaded
        if number != self._loads:
            return  # a newer load (after a change) is on its way: this one may predate the change
        self.query_one("#reservations-title", Static).update(
            f"GPU reservations on {self.ws.name}, next 48 h (times in {where})")
        now = clock.now()
        shown = [r for r in found if r.end > now and r.start < now + HORIZON]
        self.items = {r.short_id: r for r in shown}
        table = self.query_one(DataTable)
        with self.app.batch_update():
            table.clear()
            for index in gpus:  # per GPU, in time order: the timeline
                mine = [r for r in shown if index in r.gpus]
                for r in mine:
                    state = "active" if r.active(now) else "future"
                    table.add_row(Text(str(index)), Text(f"{r.clock(r.start)}–{r.clock(r.end)}"),
                                  Text(r.owner), Text(state, style=STATE_STYLE[state]), Text(r.short_id),
                                  key=f"{index}/{r.short_id}")
                if not mine:
                    table.add_row(Text(str(index)), Text("free", style="dim"), Text(""), Text(""), Text(""),
                                  key=f"{index}/-")
        self.query_one("#reservations-note", Static).update(Text(
            "a add · c cancel (not started) · e end now (started) · escape back" if gpus else
            "This workstation has no GPU that can be reserved (see the GPU panel for why).", style="dim"))

    @property
    def selected(self) -> Reservation | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        return self.items.get(key.split("/", 1)[-1])

    def _run(self, title: str, job: Callable[[], Any], said: Callable[[Any], str]) -> None:
        def done(result: Any) -> None:
            self.notify(said(result), title=title)
            self.action_reload()

        def failed(error: BaseException) -> None:
            notify_error(self.app, error, title=title)
            self.action_reload()

        run_job(self, job, title=title, on_done=done, on_error=failed, group="reserve-action")

    def action_add(self) -> None:
        fields = (Field("gpus", "GPUs", placeholder="0,1 · any:2 · all"),
                  Field("start", "From", "now", placeholder="14:00 · tomorrow 9:00 · ISO · now"),
                  Field("end", "To", placeholder="18:00 · a length such as 4h"))

        def reserve(v: Values) -> Reservation:
            return self.desk.reserve(v["gpus"], v["start"] or "now", v["end"])

        def done(result: Reservation | None) -> None:
            if result is not None:
                self.notify(f"Reserved GPU {','.join(map(str, result.gpus))} {result.when()}.")
            self.action_reload()

        self.app.push_screen(Prompt("Reserve GPUs", fields=fields, submit=reserve), done)

    def action_cancel_reservation(self) -> None:
        chosen = self.selected
        if chosen is None:
            self.notify("Select a reservation first.", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Cancel reservation", lambda: self.desk.cancel_reservation(chosen.short_id),
                          lambda r: f"Cancelled {r.short_id} ({r.when()}).")

        self.app.push_screen(Confirm(f"Cancel reservation {chosen.short_id}?",
                                     f"GPU {','.join(map(str, chosen.gpus))} {chosen.when()} "
                                     f"({chosen.owner}).", yes="Cancel it"), confirmed)

    def action_end_reservation(self) -> None:
        chosen = self.selected
        if chosen is None:
            self.notify("Select a reservation first.", severity="warning")
            return
        self._run("End reservation", lambda: self.desk.end_reservation(chosen.short_id),
                  lambda r: f"Reservation {r.short_id} ended now; its GPUs are free for others.")
