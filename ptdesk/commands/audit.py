"""`ptdesk audit`: who gave or took away what, and when (launches, grants, rotations, removals)."""

from __future__ import annotations

import json
import time

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.workstation import Workstation


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _target(target: str, detail: dict) -> str:
    """Grants and revokes are recorded against the experiment: show whose access changed, too."""
    person = detail.get("collaborator")
    return f"{target} ({person})" if person else target


@click.command("audit")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the last N entries (default: all with --json, the last 50 otherwise).")
@json_option
@pass_workstation
def audit(ws: Workstation, limit: int | None, as_json: bool) -> None:
    """Show the audit log, oldest first."""
    entries = ws.audit_log(limit if limit or as_json else 50)
    if as_json:
        emit_json([{"time": _iso(e.time), "actor": e.actor, "action": e.action, "target": e.target,
                    "detail": e.detail} for e in entries])
        return
    if not entries:
        click.echo("The audit log is empty.")
        return
    rows = [(_iso(e.time), e.actor, e.action, _target(e.target, e.detail),
             json.dumps(e.detail, sort_keys=True) if e.detail else "") for e in entries]
    click.echo(table(["TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"], rows))


COMMANDS = [audit]
