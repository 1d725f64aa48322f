"""The experiments table: rows keyed by container id, updated cell by cell.

Only when rows go away or would come back out of order (clearing the `/` filter) is the table
rebuilt: the rows keep the list's order, and column widths shrink to what is left (a DataTable's
auto widths only ever grow).

With several workstations a "Where" column says which one each experiment runs on, and the rows
of a workstation whose engine does not answer keep their last known state under an "unreachable"
status: only that box's rows say so, the others stay live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable

from ptdesk.config import LOCAL
from ptdesk.core.base.models import Experiment, listing_mark
from ptdesk.core.base.units import human_bytes
from ptdesk.tui import format as fmt
from ptdesk.tui.widgets.columns import add_keyed_columns

if TYPE_CHECKING:
    from ptdesk.core.host.cgroups import ContainerStats

COLUMNS = (("name", "Name"), ("where", "Where"), ("kind", "Kind"), ("owner", "Owner"), ("status", "Status"),
           ("gpus", "GPUs"), ("cpu", "CPU %"), ("memory", "Memory"), ("uptime", "Uptime"), ("env", "Environment"),
           ("connect", "Connect"))
Cells = tuple[object, ...]
UNREACHABLE = "unreachable"
# Below this width the figures a glance can do without give their room to what people act on
# (name, status, the environment marks, how to connect); a wider terminal shows them again.
COMPACT_BELOW = 120
OPTIONAL = frozenset({"kind", "cpu", "memory", "uptime"})


def row_key(experiment: Experiment, workstation: str = LOCAL) -> str:
    """The container id (unique across engines); a record whose container does not exist (yet)
    is keyed by its workstation and name."""
    return experiment.id or f"name:{workstation}/{experiment.name}"


def cells(e: Experiment, stats: ContainerStats | None, now: float, where: str = LOCAL,
          unreachable: bool = False) -> Cells:
    """One row; `unreachable`: its workstation's engine does not answer, so the figures are the
    last known ones and the status says why they do not move."""
    running = e.status == "running" and not unreachable
    # A stopped experiment's URL or ssh line leads nowhere (its port is gone): none is offered. One
    # on an unreachable workstation keeps its last known line, dimmed (it may well still work).
    connect = Text(e.connect, overflow="ellipsis", no_wrap=True, style="dim" if unreachable else "") \
        if e.status == "running" or not e.connect or e.kind == "job" else Text("- (stopped)", style="dim")
    if e.waiting is not None:  # queued: why it waits is what there is to know (it starts by itself)
        connect = Text(e.waiting, overflow="ellipsis", no_wrap=True, style="yellow")
    cpu = stats.cpu_percent if stats and running else None
    memory = stats.memory if stats and running else None
    started = stats.started if stats and running else None
    name = Text(e.name)
    mark = listing_mark(e.foreign, e.unverified, e.orphan)
    if mark:
        name.append(f" ({mark})", style="bold red" if mark == "orphan" else "yellow")
    # Every cell is a Text: nothing from a label is read as markup, and the table skips parsing.
    status = Text(UNREACHABLE, style="bold red") if unreachable else fmt.status(fmt.status_word(e.status))
    if running and stats and stats.oom_kills:  # a kernel or run killed by the memory limit (i for why)
        status.append(f" oom×{stats.oom_kills}", style="bold red")
    return (
        name, Text(where), Text(e.kind), Text(e.owner), status,
        Text(",".join(map(str, e.gpus)) or "-"),
        Text(fmt.percent(cpu) if running else "-", justify="right"),  # whole percent: fewer repaints
        Text(human_bytes(memory) if running else "-", justify="right"),
        Text(fmt.duration(now - started) if started else "-", justify="right"),
        environment_cell(e),
        connect,
    )


def environment_cell(e: Experiment) -> Text:
    """Fingerprint, then its marks: behind / changed in yellow, a too-old driver in red."""
    mark = e.environment
    if mark is None:
        return Text("-")
    cell = Text(mark.fingerprint or "-")
    for word in mark.marks:
        cell.append(f" {word}", style="bold red" if word == "driver" else "bold yellow")
    return cell


class ExperimentsTable(DataTable):
    """Knows the last experiments (and where each is) and stats it was given; `_sync` diffs them
    into the table. The Where column is there only while there are several workstations."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.clock = clock
        self.experiments: dict[str, Experiment] = {}
        self.where: dict[str, str] = {}  # row key -> workstation
        self.unreachable: frozenset[str] = frozenset()  # workstations whose engine does not answer
        self.show_where = False
        self.compact = False  # narrower than COMPACT_BELOW: the OPTIONAL columns are left out
        self._columns_changed = False  # the Where column came or went: rebuild at the next sync
        self.stats: dict[str, ContainerStats] = {}
        self.filter_text = ""
        self._shown: dict[str, Cells] = {}

    def on_mount(self) -> None:
        self._add_columns()
        # Textual's DataTable works out column widths when idle, after rows came or cells changed,
        # but keeps the lines it drew before that under cache keys that leave the widths out: a
        # line drawn in between (on a busy box, the cursor row) kept the narrow widths ("alic",
        # "runnin") until its next change. New widths change the table's size: drop those lines.
        self.watch(self, "virtual_size", self._widths_changed, init=False)

    def _widths_changed(self) -> None:
        self._clear_caches()  # DataTable's own reset of every rendered line and cell
        self.refresh()

    @property
    def columns_shown(self) -> tuple[tuple[str, str], ...]:
        return tuple(c for c in COLUMNS if self._wanted(c[0]))

    def _wanted(self, column: str) -> bool:
        return (column != "where" or self.show_where) and not (self.compact and column in OPTIONAL)

    def on_resize(self) -> None:
        compact = self.size.width < COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self._columns_changed = True
            self._sync()

    def _add_columns(self) -> None:
        add_keyed_columns(self, self.columns_shown)

    def matches(self, e: Experiment, where: str = "") -> bool:
        """Whether `e` (on workstation `where`) passes the filter."""
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in field.lower() for field in (e.name, e.kind, e.owner, e.status, e.connect, e.image,
                                                         where if self.show_where else ""))

    def set_experiments(self, items: Sequence[tuple[str, Experiment]], unreachable: frozenset[str] = frozenset(),
                        show_where: bool = False) -> None:
        """`items`: (workstation, experiment) in the order to show them."""
        self.experiments = {row_key(e, ws): e for ws, e in items}
        self.where = {row_key(e, ws): ws for ws, e in items}
        self.unreachable = unreachable
        if show_where != self.show_where:
            self.show_where = show_where
            self._columns_changed = True
        self._sync()

    @property
    def selected_where(self) -> str | None:
        """The workstation of the selected row (None without one)."""
        return self.where.get(self.selected_key or "")

    def set_stats(self, stats: dict[str, ContainerStats]) -> None:
        self.stats = stats
        self._sync()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._sync()

    @property
    def selected_key(self) -> str | None:
        """The row key under the cursor."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

    @property
    def selected(self) -> Experiment | None:
        return self.experiments.get(self.selected_key or "")

    def select_name(self, name: str, where: str = LOCAL) -> bool:
        """Move the cursor to experiment `name`'s row on `where`; False while it has none (not listed yet)."""
        key = next((k for k, e in self.experiments.items()
                    if e.name == name and self.where.get(k) == where and k in self._shown), None)
        if key is None:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def _sync(self) -> None:
        """Diff the wanted rows against what is shown: add, update changed cells, remove."""
        now = self.clock()
        wanted = {k: self._cells(k, e, now) for k, e in self.experiments.items()
                  if self.matches(e, self.where.get(k, LOCAL))}
        with self.app.batch_update():
            if self._needs_rebuild(wanted):
                self._rebuild(wanted)
                return
            for key, row in wanted.items():
                shown = self._shown.get(key)
                if shown is None:
                    self.add_row(*row, key=key)
                elif shown != row:
                    for (column, _), old, new in zip(self.columns_shown, shown, row, strict=True):
                        if old != new:
                            self.update_cell(key, column, new, update_width=True)
                self._shown[key] = row

    def _cells(self, key: str, e: Experiment, now: float) -> Cells:
        where = self.where.get(key, LOCAL)
        row = cells(e, self.stats.get(e.id), now, where, where in self.unreachable)
        return tuple(cell for (column, _), cell in zip(COLUMNS, row, strict=True) if self._wanted(column))

    def _needs_rebuild(self, wanted: dict[str, Cells]) -> bool:
        """Rows went away (widths may shrink), or new ones would land out of the list's order, or
        the columns changed."""
        if self._columns_changed or any(key not in wanted for key in self._shown):
            return True
        return list(wanted)[: len(self._shown)] != list(self._shown)

    def _rebuild(self, wanted: dict[str, Cells]) -> None:
        selected = self.selected_key
        self.clear(columns=True)  # fresh columns: their auto widths fit the rows left
        self._add_columns()
        self._columns_changed = False
        self._shown = {}
        for key, row in wanted.items():
            self.add_row(*row, key=key)
            self._shown[key] = row
        if selected in wanted:
            self.move_cursor(row=self.get_row_index(selected), animate=False)
