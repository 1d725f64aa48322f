"""`ptdesk notify`: where you hear about your experiments (routes), and a test of every route."""

from __future__ import annotations

import sys

import click

from ptdesk.commands.common import emit_json, json_option, table
from ptdesk.config import load_config
from ptdesk.core.notify import routes as routing
from ptdesk.errors import InvalidInput


@click.group("notify")
def notify() -> None:
    """Where you hear about your experiments: chat, e-mail and webhook routes (apprise URLs)."""


@notify.command("add")
@click.argument("name")
@click.option("--events", metavar="LIST", default=None,
              help=f"Comma-separated events for this route (default all): {', '.join(routing.EVENTS)}.")
def add(name: str, events: str | None) -> None:
    """Add route NAME; its URL is read from stdin (it holds secrets: never on the command line).

    Example: ptdesk notify add team-chat < ~/slack-url.txt, or type it at the prompt.
    """
    routing.check_name(name)
    chosen = routing.check_events(events)
    if sys.stdin.isatty():
        url = click.prompt("Route URL (not shown)", hide_input=True, err=True)
    else:
        url = sys.stdin.readline()
    if not url.strip():
        raise InvalidInput("No URL was given on stdin.", f"Run: ptdesk notify add {name} < FILE-WITH-THE-URL")
    route = routing.add_route(load_config().home, name, url, chosen)
    click.echo(f"Route '{route.name}' ({routing.masked(route.url)}) gets: {', '.join(route.events)}. "
               f"Try it: ptdesk notify test")


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
    click.echo(table(["ROUTE", "URL", "EVENTS"],
                     [[r.name, routing.masked(r.url), ",".join(r.events)] for r in routes]))


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
        click.echo(f"{d.route}: " + ("sent" if d.ok else "FAILED (check the URL: ptdesk notify ls)"))
    if any(not d.ok for d in results):
        sys.exit(1)


COMMANDS = [notify]
