"""`ptdesk images build|ls|save|load|pin`: the images experiments run in, and the team's baseline."""

from __future__ import annotations

from pathlib import Path

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.base.units import human_bytes
from ptdesk.core.environment.baseline import drift_error
from ptdesk.core.environment.images import expand_targets
from ptdesk.core.kinds import kind_names
from ptdesk.core.workstation import Workstation
from ptdesk.errors import InvalidInput


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
    """Build the ssh, jupyter or all images (build progress goes to stderr).

    Each build records its environment (labels and /etc/ptdesk/environment.json). With a team
    baseline pinned (ptdesk images pin), any difference from it is listed and the exit code is 1."""
    targets = expand_targets(target)  # validate everything before touching the engine
    if target == "all" and ws.is_remote:  # a remote workstation also needs its GPU sampler
        targets = (*targets, "sampler")

    def started(tag: str, base_image: str) -> None:
        click.echo(f"==> Building {tag} FROM {base_image}", err=True)

    results = ws.build_images(targets, base=base, ca_bundle=ca_bundle, force=force, on_line=_progress,
                              on_start=started)
    for r in results:
        verb = "unchanged" if r.cached else "built"
        fingerprint = f", environment {r.environment.fingerprint}" if r.environment else ""
        click.echo(f"==> {r.tag} {verb} in {r.seconds:.1f} s ({r.image_id[7:19]}{fingerprint})", err=True)
    drifted = {r.target: r.baseline_diff for r in results if r.baseline_diff}
    for kind, changes in drifted.items():
        click.echo(f"==> {kind}: differs from the team baseline ({len(changes)}):", err=True)
        rows = [(c.name, c.before or "-", c.after or "-", c.change) for c in changes]
        for line in table(["PACKAGE", "PINNED", "BUILT", "CHANGE"], rows).splitlines():
            click.echo(f"  {line}", err=True)
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            click.echo(f"{r.tag}: {'up to date' if r.cached else 'built'} ({r.seconds:.1f} s)")
    error = drift_error(drifted, ws.config)
    if error:
        raise error


@images_group.command("ls")
@json_option
@pass_workstation
def ls(ws: Workstation, as_json: bool) -> None:
    """Show each image: present, built when, size, environment fingerprint, PyTorch/CUDA, baseline."""
    statuses = ws.image_statuses()
    pins = ws.baseline()
    if as_json:
        emit_json([{**s.to_json(), "baseline": pins[s.target].to_json() if s.target in pins else None}
                   for s in statuses])
        return
    rows = []
    for s in statuses:
        fresh = {True: "yes", False: "no: rebuild", None: "-"}[s.up_to_date]
        env = s.environment
        pinned = pins.get(s.target)
        matches = "-" if pinned is None or not s.present else (
            "pinned" if env and env.fingerprint == pinned.fingerprint else "DIFFERS")
        rows.append([s.target, s.tag, "present" if s.present else "missing",
                     (s.created or "")[:19].replace("T", " "), human_bytes(s.size) if s.present else "",
                     fresh if s.present else "", env.fingerprint if env else "-",
                     env.torch if env else "-", env.cuda if env else "-", matches])
    click.echo(table(["IMAGE", "TAG", "STATUS", "CREATED", "SIZE", "UP TO DATE", "ENVIRONMENT", "TORCH", "CUDA",
                      "BASELINE"], rows))
    if any(not s.present for s in statuses):
        click.echo("Build missing images with: ptdesk images build all", err=True)


@images_group.command("save")
@click.argument("args", nargs=-1, required=True, metavar="[KIND...] FILE")
@json_option
@pass_workstation
def save(ws: Workstation, args: tuple[str, ...], as_json: bool) -> None:
    """Write the exact images (default: all kinds) with their recorded environment to FILE, for
    `ptdesk images load` on an engine that cannot build or pull them."""
    *kinds, file = args
    if not kinds and file in (*kind_names(), "all"):
        raise InvalidInput(f"{file!r} is an image kind, not a file to write.",
                           f"Name the file too: ptdesk images save {file} FILE")
    targets = tuple(dict.fromkeys(t for k in (kinds or ["all"]) for t in expand_targets(k)))
    report = ws.save_images(targets, Path(file))
    if as_json:
        emit_json(report.to_json())
        return
    for image in report.images:
        fingerprint = image.environment.fingerprint if image.environment else "no recorded environment"
        click.echo(f"{image.tag}: {image.image_id[7:19]} ({fingerprint})")
    click.echo(f"Saved to {report.path} ({human_bytes(report.size)}, {report.seconds:.1f} s).")


@images_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Only verify the file against its manifest; load nothing.")
@click.option("--unpinned", is_flag=True, help="Load images that differ from the team's baseline (pin).")
@json_option
@pass_workstation
def load(ws: Workstation, file: Path, check: bool, unpinned: bool, as_json: bool) -> None:
    """Verify FILE (made by `ptdesk images save`) and load its images; a file whose content does not
    match its manifest, that holds any image or tag its manifest does not list, or (without
    --unpinned) an image other than the team's pinned one, is refused and nothing is loaded."""
    report = ws.verify_images(file) if check else ws.load_images(file, unpinned)
    if as_json:
        emit_json(report.to_json())
        return
    pins = ws.baseline()
    for image in report.images:
        fingerprint = image.environment.fingerprint if image.environment else "no recorded environment"
        pinned = pins.get(image.kind)
        note = "" if pinned is None else (" = team baseline" if pinned.image_id == image.image_id
                                          else f" (team baseline is {pinned.image_id[7:19]})")
        click.echo(f"{image.tag}: {image.image_id[7:19]} ({fingerprint}){note}")
    click.echo(f"{file}: verified{'' if check else ' and loaded'} ({report.seconds:.1f} s).")


@images_group.command("pin")
@click.argument("target", default="all", metavar="[ssh|jupyter|all]")
@json_option
@pass_workstation
def pin(ws: Workstation, target: str, as_json: bool) -> None:
    """Record the current builds as the team's baseline (config `baseline`, default PTDESK_HOME/baseline.json):
    later builds report every package that differs from it."""
    pinned = ws.pin_images(expand_targets(target))
    if as_json:
        emit_json([{"kind": p.kind, **p.to_json()} for p in pinned])
        return
    for p in pinned:
        click.echo(f"{p.kind}: pinned {p.tag} {p.image_id[7:19]} (environment {p.fingerprint}, "
                   f"{len(p.packages)} packages)")
    click.echo(f"Baseline written to {ws.config.baseline_path}.")


def _progress(line: str) -> None:
    click.echo(f"  {line}", err=True)


COMMANDS = [images_group]
