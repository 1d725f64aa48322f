"""`ptdesk notify`: where you hear about your experiments (routes), and a test of every route."""

from __future__ import annotations

import sys

import click

from ptdesk.commands.common import emit_json, json_option, table
from ptdesk.config import load_config
from ptdesk.core.notify import routes as routing
from ptdesk.errors import InvalidInput


@click.group("notify", invoke_without_command=True)
@click.option("--when-free", "when_free", metavar="[GPU|any:N]", is_flag=False, flag_value="any:1", default=None,
              help="Hear once (dashboard and routes) when these GPUs are free for you: indices like 2 or 0,1, "
                   "or any:N (default any:1). Your ptdesk watch looks.")
@click.option("--on", "on", metavar="NAME", help="With --when-free: the workstation (default: the default one).")
@click.pass_context
def notify(ctx: click.Context, when_free: str | None, on: str | None) -> None:
    """Where you hear about your experiments: chat, e-mail and webhook routes (apprise URLs)."""
    if ctx.invoked_subcommand is not None:
        if when_free is not None or on is not None:
            raise click.UsageError("--when-free and --on go alone: ptdesk notify --when-free any:1 [--on NAME]")
        return
    if when_free is None:
        if on is not None:
            raise click.UsageError("--on goes with --when-free: ptdesk notify --when-free any:1 --on NAME")
        click.echo(ctx.get_help())
        return
    _when_free(when_free, on)


def _when_free(gpus: str, on: str | None) -> None:
    from ptdesk.commands.common import _open_workstation
    from ptdesk.core.gpu_desk import GpuDesk

    ws = _open_workstation(on, False, None)
    try:
        wish = GpuDesk(ws).when_free(gpus)
    finally:
        ws.close()
    what = f"{wish.gpus.removeprefix('any:')} GPU(s)" if wish.gpus.startswith("any:") else f"GPU {wish.gpus}"
    click.echo(f"You will hear once when {what} on '{wish.workstation}' are free for you "
               "(in the dashboard and on your routes; your ptdesk watch looks).")


def _collaborator(name: str) -> str:
    """`name` if it is one of this owner's collaborators (a route for someone else is refused)."""
    from ptdesk.core.workstation import Workstation

    ws = Workstation(load_config())
    try:
        if ws.store.collaborator(name) is None:
            raise InvalidInput(f"'{name}' is not one of your collaborators.", "See them with: ptdesk collab ls")
    finally:
        ws.close()
    return name


@notify.command("add")
@click.argument("name")
@click.option("--events", metavar="LIST", default=None,
              help=f"Comma-separated events for this route (default all, or notify_events in config.toml; "
                   f"with --for: {','.join(routing.FOR_THEM)}): {', '.join(routing.EVENTS)}.")
@click.option("--for", "person", metavar="COLLABORATOR", default=None,
              help="A route for one of your collaborators: they hear there the warnings that concern them.")
def add(name: str, events: str | None, person: str | None) -> None:
    """Add route NAME; its URL is read from stdin (it holds secrets: never on the command line).

    Example: ptdesk notify add team-chat < ~/slack-url.txt, or type it at the prompt.
    """
    routing.check_name(name)
    config = load_config()
    default = routing.FOR_THEM if person else routing.default_events(config.notify_events)
    chosen = routing.check_events(events, default)
    if person is not None:
        _collaborator(person)
    if sys.stdin.isatty():
        url = click.prompt("Route URL (not shown)", hide_input=True, err=True)
    else:
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        if len(lines) > 1:  # only the first was kept, silently
            raise InvalidInput(f"stdin holds {len(lines)} lines, and a route takes one URL.",
                               f"Put one URL in the file, and add each other as its own route: ptdesk notify add "
                               f"{name}-2 < FILE")
        url = lines[0] if lines else ""
    if not url.strip():
        raise InvalidInput("No URL was given on stdin.", f"Run: ptdesk notify add {name} < FILE-WITH-THE-URL")
    before = next((r for r in routing.load_routes(config.home) if r.name == name), None)
    route = routing.add_route(config.home, name, url, chosen, person)
    if before is not None:  # add replaces a route of that name: say so, with what it was
        click.echo(f"Replaced route '{name}' (it was {routing.masked(before.url)}).")
    whose = f"{person}'s route" if person else "Route"
    click.echo(f"{whose} '{route.name}' ({routing.masked(route.url)}) gets: {', '.join(route.events)}. "
               f"Try it: ptdesk notify test")


@notify.command("events")
@click.argument("name")
@click.argument("events", metavar="LIST")
def events_command(name: str, events: str) -> None:
    """Change which events route NAME gets (LIST: comma-separated, or all); its URL stays."""
    route = routing.set_events(load_config().home, name, routing.check_events(events))
    click.echo(f"Route '{route.name}' gets: {', '.join(route.events)}.")


@notify.command("ls")
@json_option
def ls(as_json: bool) -> None:
    """List your routes (URLs masked) and the events each one gets."""
    routes = routing.load_routes(load_config().home)
    if as_json:
        emit_json([r.to_json() for r in routes])
        return
    if not routes:
        click.echo("Only the dashboard and its terminal: add a route with ptdesk notify add NAME < FILE-WITH-THE-URL")
        return
    click.echo(table(["ROUTE", "FOR", "URL", "EVENTS"],
                     [[r.name, r.person or "you", routing.masked(r.url), ",".join(r.events)] for r in routes]))


@notify.command("terminal")
@click.argument("style", required=False)
def terminal(style: str | None) -> None:
    """How the terminal your dashboard runs in raises a notice: osc9, osc777, bel (default) or off."""
    from ptdesk.core.notify.terminal import STYLES, set_terminal_style, terminal_style

    home = load_config().home
    if style is not None:
        set_terminal_style(home, style)
    click.echo(f"Terminal alerts: {terminal_style(home)} (choices: {', '.join(STYLES)}). "
               "Inside tmux an OSC needs: set -g allow-passthrough on")


@notify.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Remove route NAME."""
    routing.remove_route(load_config().home, name)
    click.echo(f"Route '{name}' removed.")


@notify.command("test")
@json_option
def test(as_json: bool) -> None:
    """Send one test message to every route and say which worked (exit 1 if one did not)."""
    from ptdesk.core.notify.deliver import Notice, deliver

    home = load_config().home
    notice = Notice("test", "ptdesk: test", "A test from ptdesk notify test: this route works.")
    results = deliver(home, notice, everyone=True)
    if as_json:
        emit_json([d.to_json() for d in results])
    elif not results:
        click.echo("No routes to test: add one with ptdesk notify add NAME < FILE-WITH-THE-URL")
    for d in [] if as_json else results:
        click.echo(f"{d.route}: " + ("sent" if d.ok else f"FAILED: {d.reason} (check the URL: ptdesk notify ls)"))
    if any(not d.ok for d in results):
        sys.exit(1)


COMMANDS = [notify]
