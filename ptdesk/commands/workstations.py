"""`ptdesk workstations ls/add/rm/test`: the Docker engines ptdesk reaches over SSH."""

from __future__ import annotations

from pathlib import Path

import click

from ptdesk.commands.common import emit_json, json_option, table
from ptdesk.config import LOCAL, WorkstationEntry, load_config
from ptdesk.config_workstations import check_engine, check_entry, check_name
from ptdesk.core.admin import workstations as admin
from ptdesk.errors import ConfigError, Conflict, InvalidInput


@click.group("workstations")
def workstations() -> None:
    """The workstations (Docker engines over SSH) this ptdesk sees; `local` is this machine."""


@workstations.command("ls")
@json_option
def ls(as_json: bool) -> None:
    """List the workstations, their engine address and pinned host key."""
    config = load_config()
    rows = [{"workstation": LOCAL, "engine": "local", "address": config.connect_host, "host_key": None,
             "default": config.default_workstation == LOCAL}]
    for entry in config.workstations.values():
        pinned = admin.pinned_host_key(config, entry)
        rows.append({"workstation": entry.name, "engine": entry.engine, "address": entry.connect_address,
                     "host_key": pinned.fingerprint if pinned else None,
                     "default": config.default_workstation == entry.name})
    if as_json:
        emit_json(rows)
        return
    click.echo(table(["WORKSTATION", "ENGINE", "ADDRESS", "HOST KEY", "DEFAULT"],
                     [(r["workstation"], r["engine"], r["address"], r["host_key"] or ("-" if r["engine"] == "local"
                      else "NOT PINNED"), "yes" if r["default"] else "") for r in rows]))


@workstations.command("add")
@click.argument("name")
@click.argument("engine")
@click.option("--address", help="The address people connect to, if not the SSH host.")
@click.option("--bind-address", help="Where its experiments' ports are published (default: bind_address).")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path),
              help="SSH private key to log in with (default: ptdesk's own workstation key).")
@click.option("--default", "make_default", is_flag=True, help="Make it the default workstation.")
@click.option("--yes", is_flag=True, help="Pin the host key without asking (scripts; check the fingerprint!).")
def add(name: str, engine: str, address: str | None, bind_address: str | None, identity: Path | None,
        make_default: bool, yes: bool) -> None:
    """Add a workstation: ENGINE is ssh://user@host[:port]. Shows its host key and pins it."""
    config = load_config()
    try:
        check_name(name)
        entry = check_entry(WorkstationEntry(name=name, engine=check_engine(engine), address=address,
                                             bind_address=bind_address,
                                             identity_file=identity.expanduser().absolute() if identity else None))
    except ConfigError as exc:  # the same checks as config.toml's, but typed here: malformed input (exit 2)
        raise InvalidInput(exc.message, exc.hint) from None
    existing = config.workstations.get(name)
    if existing is not None and existing != entry:
        raise Conflict(f"A workstation {name!r} exists with other settings.",
                       f"Remove it first (ptdesk workstations rm {name}) or pick another name.")
    offered = admin.offered_host_key(entry)  # before anything is written: an unreachable box leaves nothing
    pinned = admin.pinned_host_key(config, entry)
    click.echo(f"{name}: {entry.host}:{entry.port} offers host key {offered.key_type} {offered.fingerprint}")
    if pinned and pinned != offered:
        click.echo(f"  WARNING: it differs from the pinned {pinned.key_type} {pinned.fingerprint}.", err=True)
    if not (pinned == offered or yes or _confirmed()):
        raise InvalidInput("Not pinned; nothing was changed.",
                           "Compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on that machine.")
    admin.pin_host_key(config, entry, offered)
    if existing is None:
        admin.add_entry(config, entry, make_default)
    identity_file = admin.login_key(config, entry)
    result = admin.test(config, entry)
    click.echo(f"{name} added; {'connected: ' if result.ok else ''}{result.message}")
    if not result.ok and entry.identity_file is None:
        public = Path(f"{identity_file}.pub").read_text().strip()
        click.echo(f"  To let ptdesk in, add this line to {entry.user}'s ~/.ssh/authorized_keys there:\n  {public}")


def _confirmed() -> bool:
    try:
        return click.confirm("Is this that machine's fingerprint? Pin it", default=False)
    except click.exceptions.Abort:  # no terminal to ask (or Ctrl-C): that is a no
        click.echo("", err=True)
        return False


@workstations.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Forget a workstation (its experiments keep running there; its state folder stays)."""
    config = load_config()
    if name == LOCAL:
        raise InvalidInput("local is this machine and cannot be removed.")
    folder = admin.state_folder(config, config.workstations[name]) if name in config.workstations else None
    admin.remove_entry(config, name)
    click.echo(f"{name} removed from {config.config_path}; its host key is unpinned."
               + (f" Its state stays in {folder}." if folder and folder.exists() else ""))


@workstations.command("test")
@click.argument("names", nargs=-1)
@json_option
def test(names: tuple[str, ...], as_json: bool) -> None:
    """Connect to each workstation (or those named) and ask its engine for its version."""
    config = load_config()
    for name in names:
        if name not in config.workstations:
            raise InvalidInput(f"There is no workstation {name!r}.", "List them with: ptdesk workstations ls")
    results = [admin.test(config, config.workstations[n]) for n in names or config.workstations]
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            click.echo(f"{r.workstation}: {'ok, ' if r.ok else ''}{r.message} ({r.seconds:.2f} s)",
                       err=not r.ok)
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(3)


COMMANDS = [workstations]
