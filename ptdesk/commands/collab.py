"""Collaborator commands: collab add/ls/rm/export/rotate, and the top-level grant and revoke."""

from __future__ import annotations

import posixpath
import re
import shlex
import time

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation, table
from ptdesk.core.base.durations import iso_utc
from ptdesk.core.base.keys import read_public_key_file
from ptdesk.core.collaborators.export import destination
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError


def _when(timestamp: float | None) -> str:
    return "never" if timestamp is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _shell_path(path: str) -> str:
    """`path` as one POSIX shell word; a leading ~ or ~user stays bare so their shell expands it."""
    home, slash, rest = path.partition("/")
    if not re.fullmatch(r"~[a-z0-9_.-]*", home):
        return shlex.quote(path)
    return home + slash + (shlex.quote(rest) if rest else "")


@click.group("collab")
def collab_group() -> None:
    """People who may log in to your SSH experiments, and their keys."""


@collab_group.command("add")
@click.argument("name")
@click.option("--pubkey", type=click.Path(dir_okay=False, path_type=str),
              help="Their own public key (.pub); without it ptdesk makes a key pair for them.")
@click.option("--expires", help="When their key stops working: 30d, 1.5h, 2w or YYYY-MM-DD.")
@json_option
@pass_workstation
def add(ws: Workstation, name: str, pubkey: str | None, expires: str | None, as_json: bool) -> None:
    """Add a collaborator (then give access with: ptdesk grant NAME EXPERIMENT)."""
    person = ws.add_collaborator(name, read_public_key_file(pubkey) if pubkey else None, expires)
    if as_json:
        emit_json({"name": person.name, "fingerprint": person.fingerprint, "public_key": person.public_key,
                   "identity_file": person.identity_file})
        return
    click.echo(f"{person.name} added ({person.fingerprint}, expires {_when(person.expires)}).")
    if person.identity_file:
        click.echo(f"  private key: {person.identity_file}")
    click.echo(f"  next: ptdesk grant {name} EXPERIMENT, then ptdesk collab export {name} DIR")


@collab_group.command("ls")
@json_option
@pass_workstation(reconcile=True)
def ls(ws: Workstation, as_json: bool) -> None:
    """List collaborators, their keys and where they have access (* = rotation pending there)."""
    people = ws.collaborators()
    pending = {p.name: set(ws.pending_grants(p.name)) for p in people}
    if as_json:
        emit_json([{"name": p.name, "fingerprint": p.fingerprint, "public_key": p.public_key,
                    "identity_file": p.identity_file, "created": iso_utc(p.created),
                    "expires": iso_utc(p.expires), "expired": p.expired(), "grants": list(p.grants),
                    "pending": sorted(pending[p.name])} for p in people])
        return
    if not people:
        click.echo("No collaborators (add one with: ptdesk collab add NAME).")
        return
    rows = [(p.name, p.fingerprint, "ptdesk-made" if p.identity_file else "their own",
             f"EXPIRED {_when(p.expires)}" if p.expired() else _when(p.expires),
             ", ".join(g + ("*" if g in pending[p.name] else "") for g in p.grants) or "-") for p in people]
    click.echo(table(["NAME", "FINGERPRINT", "KEY", "EXPIRES", "ACCESS"], rows))
    waiting = sorted(p for p, where in pending.items() if where)
    if waiting:  # the mark is said, not left to guess
        click.echo(f"* a key rotation is pending there; ptdesk collab rotate {waiting[0]} finishes it "
                   "(or that experiment's next start).")


@collab_group.command("rm")
@click.argument("name")
@pass_workstation(reconcile=True)
def rm(ws: Workstation, name: str) -> None:
    """Revoke a collaborator everywhere, then remove them and the keys ptdesk made."""
    ended = ws.remove_collaborator(name)
    click.echo(f"{name} removed; their keys no longer log in anywhere.")
    for each in ended:
        click.echo(f"  {each.summary()}")


@collab_group.command("export")
@click.argument("name")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@click.option("--dest", help="Where NAME will keep the folder on their own machine; ssh_config names its files "
                             "there (default: ~/.ssh/ptdesk-NAME).")
@click.option("--jump", metavar="USER@BASTION[:PORT]",
              help="Reach the experiments through this jump host (ProxyJump); the workstation itself works too, "
                   "which reaches ports bound to its 127.0.0.1.")
@pass_workstation(reconcile=True)
def export(ws: Workstation, name: str, folder: str, dest: str | None, jump: str | None) -> None:
    """Write what NAME needs to connect into FOLDER: key, ssh_config and pinned known_hosts."""
    exported = ws.export_collaborator(name, folder, dest, jump)
    for path in exported.paths:
        click.echo(str(path))
    for warning in exported.warnings:
        click.echo(f"ptdesk: warning: {warning}", err=True)
    remote = destination(name, dest)
    config = _shell_path(posixpath.join(remote, "ssh_config"))
    hosts = ", ".join(exported.hosts)
    click.echo(f"{name}: copy {folder} to {_shell_path(remote)} on your machine, then: ssh -F {config} EXPERIMENT "
               f"(one of: {hosts})", err=True)


@collab_group.command("rotate")
@click.argument("name")
@click.option("--expires", help="Lifetime of the new key: 30d, 1.5h, 2w or YYYY-MM-DD (default: unchanged).")
@click.option("--pubkey", type=click.Path(dir_okay=False, path_type=str),
              help="Their new public key (.pub), for a person who brought their own key.")
@click.option("--end-sessions", is_flag=True,
              help="The old key is compromised: also end their sessions and every process of theirs, as revoke "
                   "does (default: a routine rotation; what they run, e.g. in tmux, keeps running).")
@json_option
@pass_workstation(reconcile=True)
def rotate(ws: Workstation, name: str, expires: str | None, pubkey: str | None, end_sessions: bool,
           as_json: bool) -> None:
    """Give NAME a new key everywhere without locking them out; the old key stops working.

    Their open sessions and running processes stay, unless --end-sessions."""
    result = ws.rotate(name, expires, read_public_key_file(pubkey) if pubkey else None, end_sessions)
    if as_json:
        emit_json(result.to_json())
    else:
        verb = "Finished the earlier rotation of" if result.resumed else "Rotated"
        click.echo(f"{verb} {name}: {result.old_fingerprint} -> {result.fingerprint}")
        if result.containers:
            click.echo(table(["EXPERIMENT", "STATUS", "VERIFIED", "DETAIL"],
                             [(c.name, c.status, "yes" if c.verified else "no", c.detail) for c in result.containers]))
        if result.identity_file:
            click.echo(f"  new private key: {result.identity_file} (hand it over: ptdesk collab export {name} DIR)")
    if result.unfinished:
        names = ", ".join(f"{c.name} ({c.status})" for c in result.unfinished)
        raise PtdeskError(f"The rotation of {name} is unfinished on {names}; where pending, the old key still works.",
                          f"It finishes when they start (ptdesk start), or run ptdesk collab rotate {name} again.")


@click.command("grant")
@click.argument("name")
@click.argument("experiment")
@pass_workstation(reconcile=True)
def grant(ws: Workstation, name: str, experiment: str) -> None:
    """Let collaborator NAME log in to the SSH experiment EXPERIMENT."""
    if ws.grant(name, experiment):
        click.echo(f"{name} may now log in to {experiment}.")
    else:
        click.echo(f"{name} already has access to {experiment}.")


@click.command("revoke")
@click.argument("name")
@click.argument("experiment")
@pass_workstation(reconcile=True)
def revoke(ws: Workstation, name: str, experiment: str) -> None:
    """Take NAME's access to EXPERIMENT away (new logins are refused at once)."""
    ended = ws.revoke(name, experiment)
    click.echo(f"{name} can no longer log in to {experiment}; {ended.outcome()}.")


COMMANDS = [collab_group, grant, revoke]
