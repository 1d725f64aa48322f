"""`ptdesk env [NAME]` and `ptdesk env diff A B`: what experiments really run, and where they drifted."""

from __future__ import annotations

import time
from collections.abc import Sequence

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.environment.drift import EnvironmentDiff, ExperimentEnvironment, side_change
from ptdesk.core.environment.recorded import PackageChange
from ptdesk.core.workstation import Workstation


class EnvGroup(click.Group):
    """`ptdesk env NAME` reads as `ptdesk env show NAME` (an experiment called "diff": `env show diff`)."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)


@click.group("env", cls=EnvGroup, invoke_without_command=True)
@click.pass_context
def env_group(ctx: click.Context) -> None:
    """What an experiment runs (ptdesk env NAME), changes since launch, and differences (env diff A B).

    Without NAME: check every running experiment now (this refreshes the "changed" marks of ptdesk ls
    and the dashboard, which never exec into containers themselves)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(check_all)


@env_group.command("show")
@click.argument("name")
@json_option
@pass_workstation(reconcile=True)
def show(ws: Workstation, name: str, as_json: bool) -> None:
    """The recorded environment of NAME, and what changed inside it since launch (read live)."""
    from ptdesk.core.job_desk import JobDesk
    desk = JobDesk(ws)
    if ws.store.experiment(name) is None and desk.is_job(name):  # a job whose container is gone: its record
        job = desk.job(name)
        recorded = {"name": job.name, "image": job.image, "fingerprint": job.env_fingerprint, "like": job.like,
                    "status": job.status}
        if as_json:
            emit_json(recorded)
        else:
            click.echo(f"{job.name} (job, {job.status}): {job.image}\n  fingerprint:  "
                       f"{job.env_fingerprint or 'none recorded'}" + (f"  (the environment of {job.like})"
                                                                     if job.like else ""))
        return
    found = ws.environment(name)
    if as_json:
        emit_json(found.to_json())
        return
    click.echo("\n".join(describe(found)))


def describe(found: ExperimentEnvironment) -> list[str]:
    s, recorded = found.summary, found.recorded
    behind = "  (behind: the tag now names another build)" if found.behind else ""
    lines = [f"{found.name}: {found.image} {(found.image_id or '?')[7:19]}{behind}",
             f"  fingerprint:  {found.fingerprint or 'none recorded'}"
             + (f"  (live: {found.live_fingerprint})" if found.live_fingerprint else "")]
    if s:
        lines += [f"  base:         {s.base or '?'} ({s.base_id[7:19] if s.base_id != 'none' else '?'}"
                  f"{', ' + s.base_digest if s.base_digest != 'none' else ''})",
                  f"  os:           {s.os}",
                  f"  python:       {s.python}    torch: {s.torch}    cuda: {s.cuda}    cudnn: {s.cudnn}    "
                  f"nccl: {s.nccl}",
                  f"  packages:     {s.packages} at build"]
    elif recorded is None:
        lines.append("  Its image recorded no environment (not built by `ptdesk images build`).")
    if found.live is None:
        lines.append("  Not running: nothing read live (ptdesk start NAME, then ptdesk env NAME).")
    elif recorded is None:
        lines.append(f"  live: {len(found.live.packages)} packages, nothing recorded to compare with.")
    elif not found.changes:
        lines.append("  No package changed since launch.")
    else:
        lines.append(f"  Changed since launch ({len(found.changes)}):")
        lines += ["    " + line for line in _changes_table(found.changes)]
    return lines


@env_group.command("check")
@json_option
@pass_workstation(reconcile=True)
def check_all(ws: Workstation, as_json: bool = False) -> None:
    """Check every running experiment now (what `ptdesk env` without NAME does)."""
    started = time.monotonic()
    found = ws.check_environments()
    if as_json:
        emit_json([f.to_json() for f in found])
        return
    if not found:
        click.echo("No running experiments.")
        return
    rows = [(f.name, f.fingerprint or "-", f.live_fingerprint or "-", "behind" if f.behind else "current",
             len(f.changes) if f.recorded else "?") for f in found]
    click.echo(table(["NAME", "FINGERPRINT", "LIVE", "IMAGE", "CHANGES"], rows))
    click.echo(f"Checked {len(found)} experiment(s) in {time.monotonic() - started:.1f} s.", err=True)


@env_group.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
@pass_workstation(reconcile=True)
def diff(ws: Workstation, a: str, b: str, as_json: bool) -> None:
    """Differences between experiments A and B, package by package (B may be image:ssh or image:jupyter,
    the current build; a job after its end: the environment it ran in). Running experiments are read
    live. Exits 1 when they differ, as diff does."""
    from ptdesk.core.job_desk import JobDesk
    result = JobDesk(ws).environment_diff(a, b)  # a job after its end: the environment it ran in
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo("\n".join(render_diff(result)))
    if not result.same:
        raise click.exceptions.Exit(1)  # `ptdesk env diff A B && …` reads "the same", as with diff(1)


def render_diff(result: EnvironmentDiff) -> list[str]:
    lines = [f"A: {result.a}  fingerprint {result.a_fingerprint or '-'}",
             f"B: {result.b}  fingerprint {result.b_fingerprint or '-'}"]
    if result.same:
        return [*lines, "Same environment: no package differs."]
    for field, x, y in result.fields:
        lines.append(f"{field}: {x} -> {y}")
    if result.packages:
        lines.append(f"{len(result.packages)} package(s) differ:")
        rows = [(c.name, c.before or "-", c.after or "-", side_change(c)) for c in result.packages]
        lines += ["  " + line for line in table(["PACKAGE", "A", "B", "DIFFERENCE"], rows).splitlines()]
    return lines


def _changes_table(changes: Sequence[PackageChange]) -> list[str]:
    rows = [(c.name, c.before or "-", c.after or "-", c.change, c.by or "?") for c in changes]
    return table(["PACKAGE", "AT LAUNCH", "NOW", "CHANGE", "BY"], rows).splitlines()


COMMANDS = [env_group]
