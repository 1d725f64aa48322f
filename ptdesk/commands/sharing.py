"""Sharing GPUs: `queue` (who waits, why; cancel), `reserve`, `reservations` (timeline; cancel, end)."""

from __future__ import annotations

import time

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.gpu_desk import GpuDesk
from ptdesk.core.reservations import Reservation, clock_text, span, zone
from ptdesk.core.workstation import Workstation

HOURS_SHOWN = 48.0


@click.group("queue", invoke_without_command=True)
@json_option
@pass_workstation(reconcile=True)
@click.pass_context
def queue(ctx: click.Context, ws: Workstation, as_json: bool) -> None:
    """Every person's queued GPU requests, in the order they start, and why each waits."""
    if ctx.invoked_subcommand is not None:
        return
    desk = GpuDesk(ws)
    entries = desk.queue()
    admitters = desk.admitters()
    if as_json:
        emit_json({"queue": [e.to_json() for e in entries],
                   "admitted_by": [a.describe() for a in admitters]})
        return
    if not entries:
        click.echo("The GPU queue is empty.")
    else:
        click.echo(table(["#", "NAME", "OWNER", "GPUS", "WAITING", "WHY"],
              [[str(e.position), e.name, e.owner, e.request, _ago(e.submitted), e.reason] for e in entries]))
    if admitters:
        click.echo(f"Admitted by {admitters[0].describe()} as GPUs free, and by any ptdesk open on this box.")
    else:
        click.echo("Nothing on this box admits queued requests while nobody's ptdesk is open: run the box's "
                   "service there (`ptdesk watch`, contrib/systemd/).")


@queue.command("cancel")
@click.argument("name")
@pass_workstation
def queue_cancel(ws: Workstation, name: str) -> None:
    """Take your own queued request out of the queue."""
    GpuDesk(ws).cancel(name)
    click.echo(f"{name} left the queue (removed with its secrets).")


@click.command("reserve")
@click.argument("gpus")
@click.option("--from", "start", default="now", show_default=True,
              help="Start: 14:00, 'tomorrow 9:00', 'mon 9:00', ISO, or now (the workstation's time zone).")
@click.option("--to", "end", required=True, help="End: a time like --from, or a length such as 4h.")
@json_option
@pass_workstation
def reserve(ws: Workstation, gpus: str, start: str, end: str, as_json: bool) -> None:
    """Reserve GPUS (indices like 0,2; any:N for a count; all for the whole box) for a time."""
    found = GpuDesk(ws).reserve(gpus, start, end)
    if as_json:
        emit_json(found.to_json(time.time()))
        return
    click.echo(f"Reserved GPU{'s' if len(found.gpus) > 1 else ''} {','.join(map(str, found.gpus))} "
               f"{span(found.start, found.end)} for {found.owner} (id {found.short_id}).")


@click.group("reservations", invoke_without_command=True)
@click.option("--hours", type=float, default=HOURS_SHOWN, show_default=True, help="How far ahead to show.")
@json_option
@pass_workstation
@click.pass_context
def reservations(ctx: click.Context, ws: Workstation, hours: float, as_json: bool) -> None:
    """The GPU reservations of this workstation, per GPU, the next 48 hours."""
    if ctx.invoked_subcommand is not None:
        return
    desk, now = GpuDesk(ws), time.time()
    shown = [r for r in desk.reservations() if r.end > now and r.start < now + hours * 3600]
    if as_json:
        emit_json({"zone": zone(now), "reservations": [r.to_json(now) for r in shown]})
        return
    click.echo(f"GPU reservations, next {hours:g} h (times in {zone(now)}):")
    for index in desk.gpu_indices():
        mine = [r for r in shown if index in r.gpus]
        slots = "; ".join(_slot(r, now) for r in mine) or "free"
        click.echo(f"  GPU {index}: {slots}")


def _slot(r: Reservation, now: float) -> str:
    state = " (now)" if r.active(now) else ""
    return f"{clock_text(r.start)}–{clock_text(r.end)} {r.owner}{state} [{r.short_id}]"


@reservations.command("cancel")
@click.argument("reservation_id")
@pass_workstation
def reservations_cancel(ws: Workstation, reservation_id: str) -> None:
    """Cancel your reservation that has not started yet."""
    found = GpuDesk(ws).cancel_reservation(reservation_id)
    click.echo(f"Cancelled reservation {found.short_id} ({span(found.start, found.end)}).")


@reservations.command("end")
@click.argument("reservation_id")
@pass_workstation
def reservations_end(ws: Workstation, reservation_id: str) -> None:
    """End your started reservation now (it cannot be moved or cancelled any more)."""
    found = GpuDesk(ws).end_reservation(reservation_id)
    click.echo(f"Reservation {found.short_id} ended now; its GPUs are free for others.")


def _ago(moment: float) -> str:
    minutes = max(0, int((time.time() - moment) // 60))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


COMMANDS = [queue, reserve, reservations]
