"""`ptdesk report`: who held and who used the GPUs over a range, per person, workstation and image."""

from __future__ import annotations

import click

from ptdesk.commands.common import FleetDoor, emit_json, pass_workstation
from ptdesk.core.base import clock
from ptdesk.core.usage import render
from ptdesk.core.usage.collect import box_figures, document
from ptdesk.core.usage.ranges import report_range
from ptdesk.core.usage.weekly import send_now
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError


@click.command("report")
@click.option("--since", metavar="WHEN",
              help="Start: 7d, 2026-12-01, yesterday, monday, last week (default: 7 days ago).")
@click.option("--until", metavar="WHEN", help="End (that day included for a date or a weekday; default: now).")
@click.option("--csv", "formats", flag_value="csv", multiple=True, help="Print CSV (one table, a section column).")
@click.option("--markdown", "formats", flag_value="markdown", multiple=True, help="Print Markdown tables.")
@click.option("--json", "formats", flag_value="json", multiple=True, help="Print machine-readable JSON.")
@click.option("--send", is_flag=True, help="Also send it to your routes that take the report event.")
@pass_workstation(fleet=True)
def report(door: FleetDoor, since: str | None, until: str | None, formats: tuple[str, ...], send: bool) -> None:
    """Who held and who used the GPUs: GPU-hours held, busy, held while idle, reserved but unused, per
    person, workstation and image.

    From the history the box's service (`ptdesk watch`) records; --on NAME for one workstation
    (default, or --on all: every one).
    """
    if len(set(formats)) > 1:  # the last one typed silently won
        asked = ", ".join(f"--{f}" for f in sorted(set(formats)))
        raise click.UsageError(f"{asked} ask for different formats: pick one.")
    fmt = formats[0] if formats else None
    start, end = report_range(since, until, clock.now())  # a range that does not parse: exit 2, nothing asked
    if door.on == "all":
        door.on = None
    answers = door.open().each(lambda ws: box_figures(ws, start, end))
    got = [a.value for a in answers if a.value is not None]
    result = document(got, start, end)
    if fmt == "json":
        emit_json(result)
    elif got or not answers:  # when nothing answered, no empty tables that read "nothing recorded"
        click.echo({"csv": render.csv_text, "markdown": render.markdown}.get(fmt or "", render.text)(result).rstrip())
    for answer in answers:
        if answer.error:
            click.echo(f"ptdesk: {answer.workstation}: {answer.error.message} (left out of the report)", err=True)
    if send:
        where = door.on or ", ".join(a.workstation for a in answers if a.value is not None) or "no workstation"
        said = send_now(door.open().workstation(answers[0].workstation) if answers else _no_site(), result, where)
        sent = [d.route for d in said.deliveries if d.ok]
        failed = [d.route for d in said.deliveries if not d.ok]
        click.echo(f"Sent to {', '.join(sent) or 'no route'}" + (f"; failed: {', '.join(failed)}" if failed else "")
                   + ("" if said.deliveries else " (add one: ptdesk notify add NAME --events report)") + ".", err=True)
    if any(a.error for a in answers):
        raise click.exceptions.Exit(3)


def _no_site() -> Workstation:
    raise PtdeskError("No workstation answered, so there is nothing to send.", "Check them with: ptdesk doctor")


COMMANDS = [report]
