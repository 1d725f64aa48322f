"""Batch jobs: run (detached, snapshotted, queued, swept), jobs, cancel, rerun (logs: containers.py)."""

from __future__ import annotations

import time
from typing import Any

import click

from ptdesk.commands.common import (
    AUTO_CHOICE,
    FleetDoor,
    emit_json,
    json_option,
    pass_workstation,
    reconcile_quietly,
    table,
)
from ptdesk.config import load_config
from ptdesk.config_workstations import AUTO
from ptdesk.core.base.units import human_bytes
from ptdesk.core.job_desk import JobDesk, JobView, Slot, duration_text, ending_line
from ptdesk.core.jobs import request
from ptdesk.core.jobs.record import JobRecord
from ptdesk.core.jobs.request import JobRequest
from ptdesk.core.workstation import Workstation
from ptdesk.errors import InvalidInput, PtdeskError


def _said(as_json: bool) -> Any:
    return (lambda step: None) if as_json else (lambda step: click.echo(f"  {step}...", err=True))


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", help="Job name (default: OWNER-job-N; with --sweep, NAME-1, NAME-2...).")
@click.option("--gpus", help="none, all, auto, any:N or indices like 0,2 (default: the gpus setting, auto).")
@click.option("--gpu-memory", "gpu_memory", metavar="SIZE", help="Free memory each GPU must have, like 20G.")
@click.option("--memory", help="Memory limit, e.g. 32g (default: [limits] memory).")
@click.option("--cpus", type=float, help="CPU limit, e.g. 8 (default: [limits] cpus).")
@click.option("--workspace", metavar="DIR", help="Host folder at /workspace; outputs go to DIR/outputs/NAME "
                                                 "(default: WORKSPACE_ROOT/NAME).")
@click.option("--time-limit", "time_limit", metavar="DURATION",
              help="End it after this long (30m, 2h): SIGINT, then SIGTERM and SIGKILL a grace apart.")
@click.option("--grace", type=float, default=10.0, show_default=True,
              help="Seconds between SIGINT, SIGTERM and SIGKILL when it is ended.")
@click.option("--queue", is_flag=True, help="No GPU free: wait in the GPU queue (starts by itself).")
@click.option("--like", metavar="EXPERIMENT", help="Run in that experiment's environment as it is now.")
@click.option("--data", multiple=True, metavar="PATH[:ro|rw]",
              help="Mount a data folder at /data/BASENAME (read-only unless :rw); repeatable.")
@click.option("--sweep", multiple=True, metavar="NAME=V1,V2",
              help="One job per combination; {NAME} in the command takes each value; repeatable.")
@click.option("--code", metavar="DIR", help="The folder to snapshot as /code (default: the current folder).")
@click.option("--snapshot-limit", "snapshot_limit", default="200M", show_default=True, metavar="SIZE",
              help="Refuse a code snapshot larger than this.")
@click.option("--image", help="Image to run (default: job_image, else the SSH kind's).")
@click.option("--wait", is_flag=True, help="Follow its log until it ends; exit with its exit code.")
@json_option
@pass_workstation(reconcile=True, auto=True, launches=True)
def run(ws: Workstation, command: tuple[str, ...], wait: bool, as_json: bool, **options: Any) -> None:
    """Run COMMAND as a detached job on a snapshot of this folder: ptdesk run [OPTIONS] -- COMMAND..."""
    if wait and (count := len(request.sweep_combinations(request.check_command(tuple(command)), options["sweep"]))) > 1:
        raise InvalidInput(f"--wait follows one job, and this sweep makes {count}.",
                           "Leave out --wait; then follow each with: ptdesk logs -f NAME (ptdesk jobs lists them).")
    desk = JobDesk(ws)
    typed = JobRequest(command=tuple(command), **options)
    if typed.sweep and click.get_current_context().params.get("on") == AUTO:
        jobs = _spread(ws, typed, as_json)
    else:
        jobs = desk.submit(typed, _said(as_json))
    if wait and len(jobs) == 1:
        job = _follow(desk, jobs[0], as_json)
        if as_json:
            emit_json(job.to_json())
        click.get_current_context().exit(job.exit_code if job.exit_code is not None else 1)
    if as_json:
        emit_json([j.to_json() for j in jobs])
        return
    for job in jobs:
        values = " ".join(f"{k}={v}" for k, v in job.sweep_values.items())
        click.echo(f"{job.name} {job.status}{f' ({values})' if values else ''}; output: {job.output}")
    if len(jobs) == 1:
        click.echo(f"  log: ptdesk logs -f {jobs[0].name}; cancel: ptdesk cancel {jobs[0].name}")


def _spread(first: Workstation, typed: JobRequest, as_json: bool) -> list[JobRecord]:
    """A sweep on `--on auto`: each job where GPUs are free once the jobs before it took theirs (the
    first where --on auto chose), said per job; names free on every workstation."""
    from ptdesk.core.fleet import Fleet, naming
    fleet = Fleet(load_config())
    click.get_current_context().call_on_close(fleet.close)
    count = len(request.sweep_combinations(request.check_command(typed.command), typed.sweep))
    taken: set[str] = set()
    for answer in fleet.each(lambda ws: JobDesk(ws).taken_names()):
        taken |= answer.value or set()
    names = JobDesk(first).names(typed.name, count, taken)
    group = typed.name or names[0]
    gpus = typed.gpus or fleet.config.gpus
    choice = click.get_current_context().meta.get(AUTO_CHOICE) or fleet.choose(gpus, typed.gpu_memory, typed.queue)
    jobs: list[JobRecord] = []
    code = click.get_current_context().with_resource(JobDesk(first).frozen_code(typed))
    for index, name in enumerate(names):
        where = None
        try:
            if index:
                choice = fleet.choose(gpus, typed.gpu_memory, typed.queue)
            where = choice.workstation
            ws = first if where == first.name else fleet.workstation(where)
            click.echo(f"ptdesk: {name} on {where} ({choice.reason.rstrip('. ')}).", err=True)
            jobs += JobDesk(ws).submit(typed, _said(as_json), slot=Slot(index, name, group, code))
        except PtdeskError as exc:
            if not jobs:
                raise
            raise _kept_before(naming(exc, where) if where else exc, jobs) from None
    return jobs


def _kept_before(exc: PtdeskError, jobs: list[JobRecord]) -> PtdeskError:
    """A later job of a sweep could not be placed: the jobs placed before it stay (they are the
    person's, maybe running), named in the same sentence with how to end them."""
    made = ", ".join(f"{j.name} on {j.workstation}" for j in jobs)
    said = type(exc)(f"{exc.message.rstrip('.')} (the sweep's jobs before it are kept: {made}).",
                     f"{exc.hint} Cancel those with: ptdesk cancel NAME --on WORKSTATION." if exc.hint
                     else "Cancel those with: ptdesk cancel NAME --on WORKSTATION.")
    said.exit_code = exc.exit_code
    return said


def _follow(desk: JobDesk, job: JobRecord, as_json: bool) -> JobRecord:
    """Print its log live once it runs (all of it, kept, when it ended before), then its ending."""
    printed = as_json
    while not (ended := desk.settle(job.name)).ended:
        if not printed and desk.running(job.name):
            for line in desk.log_lines(job.name, tail="all", follow=True):
                click.echo(line)
            printed = True
        else:
            time.sleep(0.5)
    if not printed:
        for line in desk.log_lines(job.name, tail="all"):
            click.echo(line)
    if not as_json:
        click.echo(f"ptdesk: {ended.name} {_ending(ended)}", err=True)
    return ended


def _ending(job: JobRecord) -> str:
    return f"{job.status}" + (f" ({ending_line(job)})" if ending_line(job) != job.status else "")


@click.command("jobs")
@click.option("--prune", is_flag=True, help="Forget ended jobs (records, logs, snapshots).")
@json_option
@pass_workstation(fleet=True)
def jobs(door: FleetDoor, prune: bool, as_json: bool) -> None:
    """Your batch jobs: status, exit code, start, duration, GPUs, GPU-hours, peak GPU memory (sweeps grouped)."""
    fleet = door.open()
    if prune:  # records only: a workstation that does not answer has its ended jobs forgotten too
        pruned = [n for name in fleet.names for n in JobDesk(fleet.workstation(name)).prune()]
        click.echo(f"Forgot {len(pruned)} ended job(s).", err=as_json)

    def listing(ws: Workstation) -> list[JobView]:
        reconcile_quietly(ws)
        return JobDesk(ws).jobs()

    views: list[JobView] = []
    answers = fleet.each(listing)
    for answer in answers:
        if answer.ok:
            views += answer.value or []
            continue
        click.echo(f"ptdesk: {answer.error.message if answer.error else 'no answer'}", err=True)
        views += JobDesk(fleet.workstation(answer.workstation)).unreachable()
    _show(views, as_json, several=len(fleet.names) > 1)
    if not all(a.ok for a in answers):
        raise click.exceptions.Exit(3)  # what could be listed was; the exit status says not everything


def _show(views: list[JobView], as_json: bool, several: bool) -> None:
    if as_json:
        emit_json([v.to_json() for v in views])
        return
    if not views:
        click.echo("No jobs. Start one with: ptdesk run -- COMMAND")
        return
    # A sweep's jobs together, under their first job's name (across workstations too).
    views.sort(key=lambda v: (v.record.sweep or v.record.name, v.record.submitted))
    headers = ["NAME", "SWEEP", "STATUS", "EXIT", "STARTED", "DURATION", "GPUS", "GPU-H", "PEAK MEM", "OUTPUT"]
    rows = [([v.record.workstation] if several else []) + _row(v) for v in views]
    click.echo(table(["WORKSTATION", *headers] if several else headers, rows))
    for view in views:
        if view.record.leftover:
            click.echo(f"warning: {view.record.name} left processes on its GPUs: {', '.join(view.record.leftover)}")


def _row(view: JobView) -> list[str]:
    job = view.record
    started = time.strftime("%m-%d %H:%M", time.localtime(job.started)) if job.started else "-"
    sweep = " ".join(f"{k}={v}" for k, v in job.sweep_values.items()) if job.sweep else ""
    return [job.name, sweep, view.status, "" if job.exit_code is None else str(job.exit_code), started,
            duration_text(job.duration), ",".join(map(str, job.gpus)) or "-", f"{job.gpu_hours:.2f}",
            human_bytes(job.peak_gpu_memory) if job.peak_gpu_memory else "-", job.output or "-"]


def _job_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """A malformed name is a usage error (exit 2), said before any engine is asked."""
    from ptdesk.core.base.names import validate_name
    return validate_name(name)


@click.command("cancel")
@click.argument("name", callback=_job_name)
@json_option
@pass_workstation(reconcile=True)
def cancel(ws: Workstation, name: str, as_json: bool) -> None:
    """End job NAME (SIGINT, then SIGTERM and SIGKILL a grace apart), or take it out of the queue."""
    job = JobDesk(ws).cancel(name, _said(as_json))
    if as_json:
        emit_json(job.to_json())
        return
    click.echo(f"{job.name} {_ending(job)}.")
    if job.gpus and not job.leftover:
        click.echo("  Nothing of it is left on its GPUs.")


@click.command("rerun")
@click.argument("name", callback=_job_name)
@json_option
@pass_workstation(reconcile=True)
def rerun(ws: Workstation, name: str, as_json: bool) -> None:
    """Run job NAME again: the same command, code snapshot and options, as a new job."""
    jobs = JobDesk(ws).rerun(name, _said(as_json))
    if as_json:
        emit_json([j.to_json() for j in jobs])
        return
    for job in jobs:
        click.echo(f"{job.name} {job.status} (again {name}); output: {job.output}")


COMMANDS = [run, jobs, cancel, rerun]
