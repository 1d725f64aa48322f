"""Sharing GPUs: `queue` (who waits, why; cancel), `reserve`, `reservations` (timeline; cancel, end)."""

from __future__ import annotations

import time

import click

from ptdesk.commands.common import FleetDoor, emit_json, json_option, pass_workstation, reconcile_quietly, table
from ptdesk.core.fleet import Answer
from ptdesk.core.gpu_desk import Admitter, GpuDesk
from ptdesk.core.sharing.gpu_queue import QueueEntry
from ptdesk.core.sharing.reservations import Reservation, zone
from ptdesk.core.workstation import Workstation

HOURS_SHOWN = 48.0


@click.group("queue", invoke_without_command=True)
@json_option
@pass_workstation(fleet=True)
@click.pass_context
def queue(ctx: click.Context, door: FleetDoor, as_json: bool) -> None:
    """Every person's queued GPU requests on every workstation, in the order they start, and why
    each waits (--on NAME for one workstation)."""
    if ctx.invoked_subcommand is not None:
        return
    answers = door.open().each(_queue_of)
    several = len(answers) > 1
    entries = [(a.workstation, e) for a in answers if a.value for e in a.value[0]]
    if as_json:
        emit_json({"queue": [{**e.to_json(), "workstation": where} for where, e in entries],
                   "admitted_by": [f"{a.workstation}: {x.describe()}" if several else x.describe()
                                   for a in answers if a.value for x in a.value[1]]})
    else:
        _print_queue(entries, several)
        for answer in answers:
            _say_admitters(answer, several)
    if any(a.error for a in answers):
        raise click.exceptions.Exit(3)  # what could be listed was; the exit status says not everything


def _queue_of(ws: Workstation) -> tuple[list[QueueEntry], list[Admitter]]:
    reconcile_quietly(ws)  # as every command that touches experiments: this also admits what can start
    desk = GpuDesk(ws)
    return desk.queue(), desk.admitters()


def _print_queue(entries: list[tuple[str, QueueEntry]], several: bool) -> None:
    if not entries:
        click.echo("The GPU queue is empty.")
        return
    head = ["WHERE"] if several else []
    rows = [([where] if several else []) + [str(e.position), e.name, e.owner, e.request, _ago(e.submitted),
                                            e.reason] for where, e in entries]
    click.echo(table([*head, "#", "NAME", "OWNER", "GPUS", "WAITING", "WHY"], rows))


def _say_admitters(answer: Answer, several: bool) -> None:
    where = f"{answer.workstation}: " if several else ""
    if answer.error:
        click.echo(f"ptdesk: {answer.error.message}", err=True)
    elif answer.value and answer.value[1]:
        click.echo(f"{where}Admitted by {answer.value[1][0].describe()} as GPUs free, and by any ptdesk open "
                   "on this box.")
    else:
        click.echo(f"{where}Nothing on this box admits queued requests while nobody's ptdesk is open: run "
                   "the box's service there (`ptdesk watch`, contrib/systemd/).")


@queue.command("cancel")
@click.argument("name")
@pass_workstation
def queue_cancel(ws: Workstation, name: str) -> None:
    """Take your own queued request out of the queue."""
    entry = GpuDesk(ws).cancel(name)
    if entry.had is not None:  # a stopped experiment filed again: it stays, stopped
        click.echo(f"{name} left the queue; it is stopped, with everything it had. Start it: ptdesk start {name}")
    else:
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
               f"{found.when()} for {found.owner} (id {found.short_id}).")


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
    where = zone(now, desk.time_zone())
    if as_json:
        emit_json({"zone": where, "reservations": [r.to_json(now) for r in shown]})
        return
    click.echo(f"GPU reservations, next {hours:g} h (times in {where}):")
    for index in desk.gpu_indices():
        mine = [r for r in shown if index in r.gpus]
        slots = "; ".join(_slot(r, now) for r in mine) or "free"
        click.echo(f"  GPU {index}: {slots}")


def _slot(r: Reservation, now: float) -> str:
    state = " (now)" if r.active(now) else ""
    return f"{r.clock(r.start)}–{r.clock(r.end)} {r.owner}{state} [{r.short_id}]"


@reservations.command("cancel")
@click.argument("reservation_id")
@pass_workstation
def reservations_cancel(ws: Workstation, reservation_id: str) -> None:
    """Cancel your reservation that has not started yet."""
    found = GpuDesk(ws).cancel_reservation(reservation_id)
    click.echo(f"Cancelled reservation {found.short_id} ({found.when()}).")


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
