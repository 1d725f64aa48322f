"""Columns of the dashboard's tables: added by key, so rows and cells are addressed by name."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable


def add_keyed_columns(table: DataTable, columns: Iterable[tuple[str, str]]) -> None:
    """Add (key, label) columns in order: the key addresses cells, the label is what people read."""
    for key, label in columns:
        table.add_column(label, key=key)
