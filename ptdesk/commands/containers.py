"""Experiment lifecycle commands: new, logs, stop, start, rm (ls: ptdesk.commands.listing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ptdesk import collector
from ptdesk.commands.common import emit_json, json_option, pass_workstation
from ptdesk.config import Limits
from ptdesk.core.kinds import KindEntry, door_kinds
from ptdesk.errors import InvalidInput

if TYPE_CHECKING:  # `ptdesk new KIND --help` imports none of these
    from ptdesk.core.base.models import Experiment, Launched
    from ptdesk.core.workstation import Workstation

_DEFAULTS = Limits()  # what config.toml's [limits] starts from


def launch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", help="Experiment name (default: OWNER-KIND-N)."),
        click.option("--owner", help="Who it belongs to (default: you)."),
        click.option("--image", help="Image to run (default: from the config)."),
        click.option("--gpus", help="none, all, auto (least-loaded free GPU), any:N (the N least-loaded "
                                    "free GPUs) or indices like 0,2 (default: the gpus setting, auto)."),
        click.option("--gpu-memory", "gpu_memory", metavar="SIZE",
                     help="Free memory each GPU must have, like 20G (with auto or any:N: only such GPUs)."),
        # Checked by the workspace rule (one sentence each: not a folder, missing, a system tree...).
        click.option("--workspace", metavar="DIR",
                     help="Host folder mounted at /workspace (default: WORKSPACE_ROOT/NAME, kept after rm)."),
        click.option("--memory", help=f"Memory limit, e.g. 32g (default: [limits] memory, {_DEFAULTS.memory}; "
                                      "at most the workstation's memory)."),
        click.option("--cpus", type=float, help=f"CPU limit, e.g. 8 (default: [limits] cpus, {_DEFAULTS.cpus:g}; "
                                                "at most the workstation's CPUs)."),
        click.option("--shm-size", help=f"Shared memory size, e.g. 8g (default: [limits] shm_size, "
                                        f"{_DEFAULTS.shm_size})."),
        click.option("--queue", is_flag=True, help="No GPU free: wait in the GPU queue (starts by itself) "
                                                   "instead of failing."),
        click.option("--wait", is_flag=True, help="With --queue: block until it has started."),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("new")
@click.pass_context
def new(ctx: click.Context) -> None:
    """Start a new experiment container (one subcommand per kind)."""
    # A launch is a burst of imports (the Docker SDK, the launch's own modules, cryptography,
    # paramiko): the collector is paused until it returns (_launch) or, if it fails, the command ends.
    ctx.with_resource(collector.paused())


def _launch(ws: Workstation, kind: str, as_json: bool, wait: bool = False, **options: Any) -> None:
    if wait and not options.get("queue"):
        raise InvalidInput("--wait goes with --queue (a plain launch always waits until it is ready).",
                           "Add --queue, or leave out --wait.")
    spec = ws.make_spec(kind, **options)
    started = time.monotonic()
    progress = (lambda step: None) if as_json else (lambda step: click.echo(f"  {step}...", err=True))
    launched = ws.launch(spec, progress)
    collector.start_up_done()  # on again (a --queue --wait may wait for hours)
    for warning in launched.warnings:
        click.echo(f"  warning:     {warning}", err=True)
    if launched.gpu_choice and not as_json:
        click.echo(f"  GPUs chosen: {launched.gpu_choice}", err=True)
    if launched.experiment.status.startswith("queued"):
        launched = _queued(ws, launched, wait, as_json)
        if launched is None:
            return
    if as_json:
        emit_json(launched.experiment.to_json())
        return
    click.echo(f"{launched.experiment.name} is ready ({time.monotonic() - started:.1f} s).")
    _print_access(launched.experiment)


def _queued(ws: Workstation, launched: Launched, wait: bool, as_json: bool) -> Launched | None:
    """Say where it waits; with --wait, block until it runs (the launch's own output then)."""
    from ptdesk.core.base.models import Launched

    experiment = _waited(ws, launched.experiment, wait, as_json)
    return Launched(experiment) if experiment else None


def _waited(ws: Workstation, experiment: Experiment, wait: bool, as_json: bool) -> Experiment | None:
    """A queued experiment: say where it waits (None: said); with --wait, block until it runs."""
    from ptdesk.core.gpu_desk import GpuDesk

    name = experiment.name
    entry = next((e for e in GpuDesk(ws).queue() if e.name == name), None)
    if not wait:
        if as_json:
            emit_json({**experiment.to_json(), "queue": entry.to_json() if entry else None})
        else:
            click.echo(f"{name} is queued{f' #{entry.position}: {entry.reason}' if entry else ''}.")
            click.echo(f"  It starts by itself when GPUs free. See: ptdesk queue; cancel: ptdesk queue cancel {name}")
        return None
    if not as_json:
        click.echo(f"  Queued{f' #{entry.position} ({entry.reason})' if entry else ''}; waiting for GPUs...", err=True)
    GpuDesk(ws).wait_started(name)
    return ws.experiment(name)


def _print_access(experiment: Experiment) -> None:
    """The kind's own rows (connect line, host key, URL...), then the GPUs it holds."""
    for label, value in experiment.access.rows if experiment.access else ():
        click.echo(f"  {label.lower() + ':':<12} {value}")
    if experiment.gpus:
        click.echo(f"  {'gpus:':<12} {', '.join(map(str, experiment.gpus))}")


def _new_command(kind: KindEntry) -> click.Command:
    """`ptdesk new KIND`: the shared launch options, plus --pubkey for kinds that take one (from the
    registry's entry: the kind's own module is imported by the launch, not by its --help)."""

    def launch_kind(ws: Workstation, as_json: bool, wait: bool, **options: Any) -> None:
        _launch(ws, kind.name, as_json, wait, **options)

    command = pass_workstation(reconcile=True, auto=True, launches=True)(launch_kind)
    if kind.accepts_pubkeys:
        command = click.option("--pubkey", type=click.Path(dir_okay=False, path_type=str),
                               help="Also authorise this public key (your own .pub file).")(command)
    return new.command(kind.name, help=kind.summary)(launch_options(command))


for _kind in door_kinds():
    _new_command(_kind)


@click.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--tail", default="100", show_default=True, help="Lines from the end to start with, or 'all'.")
@pass_workstation(reconcile=True)
def logs(ws: Workstation, name: str, follow: bool, tail: str) -> None:
    """Print an experiment's or a job's output (a job's is kept after its container is gone)."""
    if tail != "all" and not tail.isdigit():
        raise click.BadParameter("use a number or 'all'", param_hint="--tail")
    from ptdesk.core.job_desk import JobDesk
    desk = JobDesk(ws)
    lines = desk.log_lines if desk.is_job(name) else ws.logs
    for line in lines(name, tail=tail if tail == "all" else int(tail), follow=follow):
        click.echo(line)


@click.command("stop")
@click.argument("name")
@pass_workstation(reconcile=True)
def stop(ws: Workstation, name: str) -> None:
    """Stop an experiment (workspace and keys are kept; its GPUs for gpu_hold_after_stop)."""
    was = ws.experiment(name).status
    ws.stop(name)
    click.echo(f"{name} stopped." if was == "running" else f"{name} was already stopped; nothing changed.")


@click.command("start")
@click.argument("name")
@click.option("--gpus", "gpus", metavar="REQUEST",
              help="Where its GPUs were taken after the hold: other GPUs (auto, ids like 1,3, any:N) or "
                   "none; it is re-created on them with everything installed in it.")
@click.option("--queue", is_flag=True, help="Its GPUs cannot be had now: wait in the GPU queue (for as many "
                                           "as it had, or what --gpus says); it starts by itself, keeping everything.")
@click.option("--wait", is_flag=True, help="With --queue: block until it has started.")
@json_option
@pass_workstation(reconcile=True)
def start(ws: Workstation, name: str, gpus: str | None, queue: bool, wait: bool, as_json: bool) -> None:
    """Start a stopped experiment and wait until it is ready (on the same GPUs if still free)."""
    if wait and not queue:
        raise InvalidInput("--wait goes with --queue (a plain start always waits until it is ready).",
                           "Add --queue, or leave out --wait.")
    had = ws.experiment(name).gpus if gpus is not None else None  # a move is said, not left to notice
    experiment = ws.start(name, gpus=gpus, queue=queue)
    if experiment.status.startswith("queued"):
        found = _waited(ws, experiment, wait, as_json)
        if found is None:
            return
        experiment = found
    if as_json:
        emit_json(experiment.to_json())
        return
    click.echo(f"{name} is running{_moved(had, experiment.gpus)}.")
    _print_access(experiment)


def _moved(had: tuple[int, ...] | None, now: tuple[int, ...]) -> str:
    """' on GPU 2 (it had GPUs 0, 1: re-created there, ...)' when start moved it; '' when not."""
    if had is None or tuple(had) == tuple(now):
        return ""
    def gpus(ids: tuple[int, ...]) -> str:
        return f"GPU{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}" if ids else "no GPU"
    where = f" on {gpus(now)}" if now else " without a GPU"
    return f"{where} (it had {gpus(had)}: re-created with everything made inside)"


@click.command("rm")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even if it is running.")
@pass_workstation  # no reconcile first: it could release NAME itself and `rm` would then say "no such name"
def rm(ws: Workstation, name: str, force: bool) -> None:
    """Remove an experiment and everything it was given (the workspace stays)."""
    ws.remove(name, force=force)
    click.echo(f"{name} removed.")


COMMANDS = [new, logs, stop, start, rm]  # ls: ptdesk.commands.listing
