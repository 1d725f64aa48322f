"""`ptdesk ls`: the experiments of every workstation.

Asked of a resident ptdesk (`ptdesk serve`) when one runs with the same settings: it holds the
engine connections, so the CLI neither imports the Docker SDK nor makes an SSH handshake. Otherwise
(or if it does not answer) the CLI asks every workstation itself, in parallel. Both paths render the
same answers (ptdesk.core.admin.resident.answers_json).
"""

from __future__ import annotations

from typing import Any

import click

from ptdesk.commands.common import FleetDoor, emit_json, json_option, pass_workstation, reconcile_quietly, table
from ptdesk.core.admin import resident_client
from ptdesk.core.base.models import listing_mark, status_word


@click.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include stopped experiments.")
@json_option
@pass_workstation(fleet=True)
def ls(door: FleetDoor, show_all: bool, as_json: bool) -> None:
    """List experiments (of every workstation, asked in parallel; --on NAME for one)."""
    # Always every experiment: the ones a plain `ls` leaves out are counted in its footer.
    reply = resident_client.ask(door.config.home, {"op": "ls", "all": True, "on": door.on})
    if reply is not None:
        answers = reply["answers"]
    else:
        from ptdesk.core.admin.resident import answers_json

        answers = answers_json(door.open(), True, reconcile_quietly)
    single = len(answers) == 1
    for answer in answers:
        if answer["error"]:
            message = answer["error"]["message"]
            if not single and not message.startswith("Workstation "):  # the local one, among several
                message = f"Workstation {answer['workstation']}: {message}"
            click.echo(f"ptdesk: {message}", err=True)
            if answer["error"]["hint"] and single:
                click.echo(f"  hint: {answer['error']['hint']}", err=True)
    rows = [row for a in answers for row in a["rows"] or ()]
    stopped = [e for e in (row["json"] for row in rows) if status_word(e["status"]) == "stopped"
               and not e.get("foreign") and not e.get("unverified")]
    if not show_all:
        rows = [row for row in rows if row["json"]["status"] in ("running", "unreachable")]
    if as_json:
        emit_json([row["json"] for row in rows])
    else:
        _print(rows, show_all, several=not single, failed=any(a["error"] for a in answers))
        if stopped and not show_all:
            _stopped_footer(stopped)
    if any(a["error"] for a in answers):
        raise click.exceptions.Exit(3)  # what could be listed was; the exit status says not everything


def _stopped_footer(stopped: list[dict[str, Any]]) -> None:
    """Stopped experiments a plain `ls` leaves out are said, not hidden: after an engine restart
    (or a reboot) they are the ones that did not come back by themselves."""
    names = ", ".join(e["name"] + (f" ({e['workstation']})" if e.get("workstation") else "") for e in stopped[:5])
    more = f" and {len(stopped) - 5} more" if len(stopped) > 5 else ""
    first = stopped[0]
    on = f" --on {first['workstation']}" if first.get("workstation") and first["workstation"] != "local" else ""
    click.echo(f"ptdesk: {len(stopped)} stopped experiment(s) not shown: {names}{more}. "
               f"See them with ptdesk ls --all; start one with: ptdesk start {first['name']}{on}", err=True)


def _print(rows: list[dict[str, Any]], show_all: bool, several: bool, failed: bool) -> None:
    if not rows:
        if failed:
            return  # the error said it: "No experiments" would claim what nobody could see
        click.echo("No experiments." if show_all else "No running experiments (ptdesk ls --all shows stopped ones).")
        return
    cells = []
    for row in rows:
        e = row["json"]
        mark = listing_mark(bool(e.get("foreign")), bool(e.get("unverified")), bool(e.get("orphan")))
        # A stopped experiment's line leads nowhere until it is started again (as in the dashboard);
        # one whose engine did not answer is not known to be stopped (it may well still run).
        connect = row["connect"] if e["status"] in ("running", "unreachable") or not row["connect"] else "- (stopped)"
        cells.append(((e["workstation"],) if several else ()) + (
            e["name"] + (f" ({mark})" if mark else ""), e["kind"], e["owner"], status_word(e["status"]),
            row["logged_in"], ",".join(map(str, e["gpus"])) or "-", row["environment"], connect))
    headers = ["NAME", "KIND", "OWNER", "STATUS", "LOGGED IN", "GPUS", "ENVIRONMENT", "CONNECT"]
    click.echo(table(["WORKSTATION", *headers] if several else headers, cells))


COMMANDS = [ls]
