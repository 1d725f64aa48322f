"""`ptdesk images build|ls`: the SSH and Jupyter images experiments run in."""

from __future__ import annotations

from pathlib import Path

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.images import expand_targets
from ptdesk.core.kinds import kind_names
from ptdesk.core.units import human_bytes
from ptdesk.core.workstation import Workstation


@click.group("images")
def images_group() -> None:
    """Build and list the images experiments run in."""


@images_group.command("build")
@click.argument("target", default="all", metavar=f"[{'|'.join((*kind_names(), 'all'))}]")
@click.option("--base", metavar="IMAGE", help="Base image to build FROM (default: config base_image).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Extra CA bundle (PEM) for HTTPS inside the build, e.g. a TLS-intercepting proxy's. "
                   "Default: config ca_bundle, else the one pip uses "
                   "(PIP_CERT, pip.conf cert, REQUESTS_CA_BUNDLE, SSL_CERT_FILE).")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed since the last build.")
@json_option
@pass_workstation
def build(ws: Workstation, target: str, base: str | None, ca_bundle: Path | None, force: bool,
          as_json: bool) -> None:
    """Build one kind's image, or all of them (build progress goes to stderr)."""

    def started(tag: str, base: str) -> None:
        click.echo(f"==> Building {tag} FROM {base}", err=True)

    # On a remote workstation `all` also means its GPU sampler (ptdesk reads local GPUs itself).
    targets = (*expand_targets(target), "sampler") if target == "all" and ws.is_remote else expand_targets(target)
    results = ws.build_images(targets, base=base, ca_bundle=ca_bundle, force=force,
                              on_line=_progress, on_start=started)
    for result in results:
        verb = "unchanged" if result.cached else "built"
        click.echo(f"==> {result.tag} {verb} in {result.seconds:.1f} s ({result.image_id[7:19]})", err=True)
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            click.echo(f"{r.tag}: {'up to date' if r.cached else 'built'} ({r.seconds:.1f} s)")


@images_group.command("ls")
@json_option
@pass_workstation
def ls(ws: Workstation, as_json: bool) -> None:
    """Show whether each image is present, when it was built and its size."""
    statuses = ws.image_statuses()
    if as_json:
        emit_json([s.to_json() for s in statuses])
        return
    rows = []
    for s in statuses:
        fresh = {True: "yes", False: "no: rebuild", None: "-"}[s.up_to_date]
        rows.append([s.target, s.tag, "present" if s.present else "missing",
                     (s.created or "")[:19].replace("T", " "), human_bytes(s.size) if s.present else "",
                     fresh if s.present else ""])
    click.echo(table(["IMAGE", "TAG", "STATUS", "CREATED", "SIZE", "UP TO DATE"], rows))
    if any(not s.present for s in statuses):
        click.echo("Build missing images with: ptdesk images build all", err=True)


def _progress(line: str) -> None:
    click.echo(f"  {line}", err=True)


COMMANDS = [images_group]
