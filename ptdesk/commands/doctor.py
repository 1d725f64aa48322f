"""`ptdesk doctor`: can ptdesk launch here, and if not, why and what to do (checks: ptdesk.core.admin.doctor)."""

from __future__ import annotations

import click

from ptdesk.commands.common import emit_json, json_option
from ptdesk.core.admin.doctor import run_checks
from ptdesk.errors import EngineUnavailable, PtdeskError

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@click.command("doctor")
@click.option("--on", "on", metavar="NAME", help="Check that workstation (its engine over SSH, its GPUs "
              "through its sampler, its store and keys) instead of this machine.")
@json_option
def doctor(on: str | None, as_json: bool) -> None:
    """Check the engine, GPU runtime, images, NVML, state and keys; exit 0 when ptdesk can launch."""
    report = run_checks(on)
    if as_json:
        emit_json(report.to_json())
    else:
        for check in report.checks:
            click.echo(f"[{_MARK[check.status]}] {check.name:<14} {check.detail}")
            if check.hint and check.status != "ok":
                click.echo(f"       {'':<14} hint: {check.hint}")
    failed = [c for c in report.checks if c.status == "fail"]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more failed check(s) above)" if len(failed) > 1 else ""
        error_type = EngineUnavailable if first.name == "engine" else PtdeskError
        where = f"on {on}" if on and on != "local" else "here"
        raise error_type(f"Cannot launch {where}: {first.detail.rstrip('.')}{more}.", first.hint)


COMMANDS = [doctor]
