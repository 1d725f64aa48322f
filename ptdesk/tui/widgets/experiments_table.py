"""The experiments table: rows keyed by container id, updated cell by cell.

Only when rows go away or would come back out of order (clearing the `/` filter) is the table
rebuilt: the rows keep the list's order, and column widths shrink to what is left (a DataTable's
auto widths only ever grow).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable

from ptdesk.core.models import Experiment
from ptdesk.core.units import human_bytes
from ptdesk.tui import format as fmt

if TYPE_CHECKING:
    from ptdesk.core.stats import ContainerStats

COLUMNS = (("name", "Name"), ("kind", "Kind"), ("owner", "Owner"), ("status", "Status"), ("gpus", "GPUs"),
           ("cpu", "CPU %"), ("memory", "Memory"), ("uptime", "Uptime"), ("env", "Environment"),
           ("connect", "Connect"))
Cells = tuple[object, ...]


def row_key(experiment: Experiment) -> str:
    """The container id; a record whose container does not exist (yet) is keyed by its name."""
    return experiment.id or f"name:{experiment.name}"


def cells(e: Experiment, stats: ContainerStats | None, now: float) -> Cells:
    running = e.status == "running"
    # A stopped experiment's URL or ssh line leads nowhere (its port is gone): none is offered.
    connect = Text(e.connect, overflow="ellipsis", no_wrap=True) if running or not e.connect \
        else Text("- (stopped)", style="dim")
    cpu = stats.cpu_percent if stats and running else None
    memory = stats.memory if stats and running else None
    started = stats.started if stats and running else None
    name = Text(e.name)
    if e.orphan:
        name.append(" (orphan)", style="bold red")
    # Every cell is a Text: nothing from a label is read as markup, and the table skips parsing.
    return (
        name, Text(e.kind), Text(e.owner), fmt.status(fmt.status_word(e.status)),
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
    """Knows the last experiments and stats it was given; `show` diffs them into the table."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.clock = clock
        self.experiments: dict[str, Experiment] = {}
        self.stats: dict[str, ContainerStats] = {}
        self.filter_text = ""
        self._shown: dict[str, Cells] = {}

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def matches(self, e: Experiment) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in field.lower() for field in (e.name, e.kind, e.owner, e.status, e.connect, e.image))

    def set_experiments(self, items: tuple[Experiment, ...]) -> None:
        self.experiments = {row_key(e): e for e in items}
        self._sync()

    def set_stats(self, stats: dict[str, ContainerStats]) -> None:
        self.stats = stats
        self._sync()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._sync()

    @property
    def selected(self) -> Experiment | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return self.experiments.get(key or "")

    def select_name(self, name: str) -> bool:
        """Move the cursor to experiment `name`'s row; False while it has none (not listed yet)."""
        key = next((k for k, e in self.experiments.items() if e.name == name and k in self._shown), None)
        if key is None:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def _sync(self) -> None:
        """Diff the wanted rows against what is shown: add, update changed cells, remove."""
        now = self.clock()
        wanted = {k: cells(e, self.stats.get(e.id), now) for k, e in self.experiments.items() if self.matches(e)}
        with self.app.batch_update():
            if self._needs_rebuild(wanted):
                self._rebuild(wanted)
                return
            for key, row in wanted.items():
                shown = self._shown.get(key)
                if shown is None:
                    self.add_row(*row, key=key)
                elif shown != row:
                    for (column, _), old, new in zip(COLUMNS, shown, row, strict=True):
                        if old != new:
                            self.update_cell(key, column, new, update_width=True)
                self._shown[key] = row

    def _needs_rebuild(self, wanted: dict[str, Cells]) -> bool:
        """Rows went away (widths may shrink), or new ones would land out of the list's order."""
        if any(key not in wanted for key in self._shown):
            return True
        return list(wanted)[: len(self._shown)] != list(self._shown)

    def _rebuild(self, wanted: dict[str, Cells]) -> None:
        selected = self.selected
        self.clear(columns=True)  # fresh columns: their auto widths fit the rows left
        self._add_columns()
        self._shown = {}
        for key, row in wanted.items():
            self.add_row(*row, key=key)
            self._shown[key] = row
        if selected is not None and (key := row_key(selected)) in wanted:
            self.move_cursor(row=self.get_row_index(key), animate=False)
