"""`ptdesk vscode`: the VS Code Server cache of a workstation, so Remote-SSH never downloads.

add / fetch put a build in the cache (checked whole first: nothing half-placed), status says what is
cached and which clients' commits are missing, rm takes one out, settings prints the client side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.base.units import human_bytes
from ptdesk.core.vscode import cache
from ptdesk.core.vscode.layout import DOWNLOAD_URL, MOUNT, servers_folder
from ptdesk.core.workstation import Workstation

# What the person sets in their VS Code (settings.json) for a box without internet; why, each.
CLIENT_SETTINGS: tuple[tuple[str, object, str], ...] = (
    ("remote.SSH.useExecServer", False,
     "start the cached server directly: the exec server would first download the `code` CLI (code-COMMIT)"),
    ("remote.SSH.localServerDownload", "off",
     "never download anything: the server is already there (\"always\" instead: your laptop downloads "
     "builds that are not cached and copies them over)"),
    ("update.mode", "manual",
     "keep your VS Code on the commit the workstation caches; update it when the cache has the next one"),
)


def _progress(step: str) -> None:
    """Steps for a person watching (a terminal); scripts get the result or one error sentence."""
    if sys.stderr.isatty():
        click.echo(f"  {step}...", err=True)


@click.group("vscode")
def vscode_group() -> None:
    """VS Code Server builds cached on a workstation, so Remote-SSH starts at once and offline."""


@vscode_group.command("add")
@click.argument("tarball", type=click.Path(path_type=Path))
@click.option("--commit", metavar="ID", help="The commit the build must be (default: the one its product.json says).")
@json_option
@pass_workstation
def add(ws: Workstation, tarball: Path, commit: str | None, as_json: bool) -> None:
    """Add vscode-server-linux-x64.tar.gz (the file VS Code would download) to the cache."""
    build = cache.add(ws, tarball.expanduser(), commit, _progress)
    _added(ws, build.commit, build.version, build.size, as_json)


@vscode_group.command("fetch")
@click.argument("commit")
@json_option
@pass_workstation
def fetch(ws: Workstation, commit: str, as_json: bool) -> None:
    """Download the VS Code Server of COMMIT once (this machine needs internet) and cache it."""
    from ptdesk.core.vscode.fetch import fetch as fetch_build

    build = fetch_build(ws, commit, _progress)
    _added(ws, build.commit, build.version, build.size, as_json)


def _added(ws: Workstation, commit: str, version: str, size: int, as_json: bool) -> None:
    if as_json:
        emit_json({"workstation": ws.name, "commit": commit, "version": version, "size": size})
        return
    click.echo(f"VS Code Server {version} ({commit}) is cached on {ws.name}: clients of that commit start "
               f"without downloading in SSH experiments created from now on (at {MOUNT}/{servers_folder(commit)}).")


@vscode_group.command("status")
@json_option
@pass_workstation
def status(ws: Workstation, as_json: bool) -> None:
    """The cached builds, which SSH experiments see them, and clients' commits that are missing."""
    from ptdesk.core.vscode.status import status as cache_status

    found = cache_status(ws)
    if as_json:
        emit_json(found.to_json())
        return
    if found.cached:
        click.echo(f"Cached on {ws.name} (volume {found.volume}):")
        click.echo(table(["COMMIT", "VERSION", "SIZE"],
                         [[c.commit, c.version, human_bytes(c.size)] for c in found.cached]))
    else:
        click.echo(f"Nothing cached on {ws.name}: ptdesk vscode add FILE, or ptdesk vscode fetch COMMIT.")
    if found.mounted:
        click.echo(f"Seen by: {', '.join(found.mounted)}")
    if found.not_mounted:
        click.echo(f"Not seen by (created before the cache; re-create them to see it): {', '.join(found.not_mounted)}")
    for asked in found.missing:
        click.echo(f"Missing: {asked.commit}, asked for by a client in {', '.join(asked.experiments)}. "
                   f"Bring it: ptdesk vscode add FILE --commit {asked.commit}")
    if found.unread:
        click.echo(f"Homes not read (their image has no setpriv, or the exec failed): {', '.join(found.unread)}")


@vscode_group.command("rm")
@click.argument("commit")
@pass_workstation
def rm(ws: Workstation, commit: str) -> None:
    """Remove the build of COMMIT from the cache (clients of it download again, where they can)."""
    cache.remove(ws, commit)
    click.echo(f"Removed VS Code Server {commit} from {ws.name}'s cache.")


@vscode_group.command("settings")
@json_option
def settings(as_json: bool) -> None:
    """The VS Code settings (your machine's settings.json) for workstations without internet."""
    values = {key: value for key, value, _ in CLIENT_SETTINGS}
    if as_json:
        emit_json(values)
        return
    click.echo("Add to your VS Code settings.json (Preferences: Open User Settings (JSON)):\n")
    click.echo("\n".join(["{"] + [f"    // {why}\n    {json.dumps(key)}: {json.dumps(value)},"
                                  for key, value, why in CLIENT_SETTINGS] + ["}"]))
    click.echo("\nYour client's commit: Help > About (Commit), or the second line of `code --version`.\n"
               "Its build, on any machine with internet:\n"
               f"  {DOWNLOAD_URL.replace('{commit}', 'COMMIT')}\n"
               "then: ptdesk vscode add vscode-server-linux-x64.tar.gz --commit COMMIT [--on WORKSTATION]")


COMMANDS = [vscode_group]
