"""`ptdesk serve`: a resident ptdesk that keeps every workstation's engine connection open and
answers `ptdesk ls` over PTDESK_HOME/run/ptdesk.sock (0600), so listing costs no SSH handshake."""

from __future__ import annotations

import signal
import threading

import click

from ptdesk.commands.common import reconcile_quietly
from ptdesk.config import load_config


@click.command("serve")
def serve() -> None:
    """Hold the engine connections and answer ls for this user until Ctrl-C."""
    from ptdesk.core.admin.resident import ResidentServer

    server = ResidentServer(load_config(), reconcile_quietly)
    click.echo(f"ptdesk: serving {server.path} for {', '.join(server.fleet.names)} (Ctrl-C ends it).", err=True)
    stop = threading.Event()
    # SIGTERM (systemd, kill) ends it as cleanly as Ctrl-C: the socket file goes with it.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.serve(stop)
    except KeyboardInterrupt:
        stop.set()


COMMANDS = [serve]
