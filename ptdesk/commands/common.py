"""What every command shares: the Workstation, JSON output, and human-friendly tables.

The core (and with it the Docker SDK, ~0.5 s of imports) is imported only when a command really
opens a Workstation, so that `ptdesk ls` answered by a resident ptdesk never pays for it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ptdesk.config import LOCAL, Config, load_config
from ptdesk.config_workstations import AUTO
from ptdesk.errors import EngineUnavailable, InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.fleet import Fleet
    from ptdesk.core.workstation import Workstation


@dataclass
class FleetDoor:
    """What a fleet-wide command gets: the settings and --on, and the Fleet opened only if needed."""

    config: Config
    on: str | None
    _fleet: Fleet | None = field(default=None, repr=False)

    def open(self) -> Fleet:
        if self._fleet is None:
            from ptdesk.core.fleet import Fleet

            self._fleet = Fleet(self.config, names=[self.on] if self.on else None)
            click.get_current_context().call_on_close(self._fleet.close)
        return self._fleet


def pass_workstation(func: Callable[..., Any] | None = None, *, reconcile: bool = False, fleet: bool = False,
                     auto: bool = False, launches: bool = False) -> Any:
    """Give the command a Workstation (one per process), closed when the command ends, and its
    `--on NAME` option (default: the configured default workstation, else local).

    `@pass_workstation(reconcile=True)` is for commands that touch experiments: the store is first brought
    in line with the engine (what gone containers held is released, dead launches are rolled back),
    best effort, so a command never fails or waits because of it. `fleet=True` gives a Fleet of every
    workstation instead (or only --on's); `auto=True` lets `--on auto` choose where a GPU is free;
    `launches=True`: the command launches, and the engine's info is read while the reconcile runs.
    """
    if func is None:
        return functools.partial(pass_workstation, reconcile=reconcile, fleet=fleet, auto=auto, launches=launches)

    @click.option("--on", "on", metavar="NAME", help=_ON_HELP[fleet, auto])
    @functools.wraps(func)
    def wrapper(*args: Any, on: str | None = None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if fleet:
            return func(FleetDoor(load_config(), on), *args, **kwargs)
        from ptdesk.core.workstation import Workstation

        ws = ctx.find_object(Workstation)
        if ws is None:
            ws = _open_workstation(on, auto, kwargs.get("gpus"), kwargs.get("gpu_memory"), bool(kwargs.get("queue")),
                                   said=not kwargs.get("sweep"))
            ctx.obj = ws
            ctx.call_on_close(ws.close)
        if launches:
            ws.expect_launch()
        if reconcile:
            reconcile_quietly(ws)
        try:
            return func(ws, *args, **kwargs)
        except PtdeskError as exc:
            from ptdesk.core.fleet import naming

            raise naming(exc, ws.name) from None

    return wrapper


_ON_HELP = {
    (False, False): "Workstation to act on (default: default_workstation, else local).",
    (False, True): "Workstation to launch on, or auto: the one with the most free GPU capacity.",
    (True, False): "Only this workstation (default: every one).",
    (True, True): "Only this workstation (default: every one).",
}


AUTO_CHOICE = "ptdesk.auto_choice"  # ctx.meta: the Choice `--on auto` made (a sweep says it per job)


def _open_workstation(on: str | None, auto: bool, gpus: str | None, gpu_memory: str | None = None,
                      queue: bool = False, said: bool = True) -> Workstation:
    from ptdesk.core.workstation import Workstation

    config = load_config()
    gpus = gpus or config.gpus  # what the launch itself will ask for
    name = on or config.default_workstation
    if name == AUTO:
        if not auto:
            raise InvalidInput("--on auto only chooses where to launch.", "Name the workstation: --on NAME.")
        from ptdesk.core.fleet import Fleet  # (the other workstations: only for --on auto)

        fleet = Fleet(config)
        try:
            choice = fleet.choose(gpus, gpu_memory, queue)
        finally:
            fleet.close()
        click.get_current_context().meta[AUTO_CHOICE] = choice
        if said:
            click.echo(f"ptdesk: --on auto chose {choice.workstation} ({choice.reason.rstrip('. ')}).", err=True)
        name = choice.workstation
    if name != LOCAL and name not in config.workstations:
        raise InvalidInput(f"There is no workstation {name!r}.",
                           "List them with: ptdesk workstations ls (local is this machine).")
    return Workstation(config, config.workstations.get(name))


def reconcile_quietly(ws: Workstation) -> None:
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


def current_workstation() -> str | None:
    """The name of the command's Workstation, if it opened one."""
    ctx = click.get_current_context(silent=True)
    core = sys.modules.get("ptdesk.core.workstation")  # not imported: no Workstation to name
    ws = ctx.find_object(core.Workstation) if ctx and core else None
    return ws.name if ws is not None else None


def emit_json(data: Any) -> None:
    """Print JSON; objects (and the objects of a list) say which workstation they are about."""
    name = current_workstation()
    if name is not None:
        def tag(item: Any) -> Any:
            return {**item, "workstation": item.get("workstation", name)} if isinstance(item, dict) else item

        data = [tag(item) for item in data] if isinstance(data, list) else tag(data)
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no colours: it must read well in logs and pipes)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
