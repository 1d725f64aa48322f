"""What every command shares: the Workstation, JSON output, and human-friendly tables."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import click

from ptdesk.core.workstation import Workstation
from ptdesk.errors import EngineUnavailable, PtdeskError


def pass_workstation(func: Callable[..., Any] | None = None, *, reconcile: bool = False) -> Any:
    """Give the command a Workstation (one per process), closed when the command ends.

    `@pass_workstation(reconcile=True)` is for commands that touch experiments: the store is first brought
    in line with the engine (what gone containers held is released, dead launches are rolled back),
    best effort, so a command never fails or waits because of it.
    """
    if func is None:
        return functools.partial(pass_workstation, reconcile=reconcile)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ws = ctx.find_object(Workstation)
        if ws is None:
            ws = Workstation()
            ctx.obj = ws
            ctx.call_on_close(ws.close)
        if reconcile:
            _reconcile_quietly(ws)
        return func(ws, *args, **kwargs)

    return wrapper


def _reconcile_quietly(ws: Workstation) -> None:
    try:
        report = ws.reconcile()
    except (EngineUnavailable, OSError, sqlite3.Error):
        return  # the command itself meets the same problem and says so, once
    except PtdeskError as exc:
        click.echo(f"ptdesk: could not reconcile with the engine ({exc.message})", err=True)
        return
    except Exception as exc:  # best effort by design: the command the person asked for still runs
        click.echo(f"ptdesk: could not reconcile with the engine ({type(exc).__name__}: {exc})", err=True)
        return
    if report.changed:
        done = [f"{what} {', '.join(names)}" for what, names in (
            ("released", report.released), ("rolled back", report.rolled_back), ("adopted", report.adopted))
            if names]
        click.echo(f"ptdesk: cleaned up after containers that went away: {'; '.join(done)}.", err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no colours: it must read well in logs and pipes)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
