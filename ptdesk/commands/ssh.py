"""Working in SSH experiments: ssh-config (and its one Include line), ssh NAME, forward NAME PORT."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import click

from ptdesk.commands.common import emit_json, json_option, pass_workstation
from ptdesk.config import LOCAL
from ptdesk.core.base.models import Experiment, status_word
from ptdesk.core.workstation import Workstation
from ptdesk.errors import InvalidInput, PtdeskError

# How long `forward` waits for ssh to log in and listen before it says what went wrong.
FORWARD_READY_TIMEOUT = 30.0


def _ssh_client() -> str:
    found = shutil.which("ssh")
    if found is None:
        raise PtdeskError("OpenSSH's client (ssh) is not installed here.",
                          "Install it: sudo apt-get install openssh-client")
    return found


@click.command("ssh-config")
@click.option("--install", is_flag=True,
              help="Add one `Include` line for it at the top of ~/.ssh/config (nothing else is changed).")
@click.option("--uninstall", is_flag=True, help="Take that `Include` line out of ~/.ssh/config again.")
@json_option
@pass_workstation(reconcile=True)
def ssh_config_command(ws: Workstation, install: bool, uninstall: bool, as_json: bool) -> None:
    """ptdesk's own OpenSSH config: one Host per SSH experiment, so `ssh NAME` works."""
    if install and uninstall:
        raise InvalidInput("--install and --uninstall cannot go together.", "Pick one.")
    found = ws.ssh_config(install=install, uninstall=uninstall)
    if as_json:
        emit_json(found.to_json())
        return
    if uninstall:
        click.echo(f"Removed `{found.include}` from {found.user_config}." if found.removed else
                   f"{found.user_config} has no `{found.include}`: nothing to remove.")
        return
    if install:
        said = "Added" if found.added else "Already there:"
        click.echo(f"{said} `{found.include}` at the top of {found.user_config}.")
        running = [h for h in found.hosts if h not in found.stopped]
        click.echo("Now `ssh NAME` works for " + (", ".join(running) or "every SSH experiment you launch")
                   + " (and VS Code Remote-SSH lists them)"
                   + (f"; for {', '.join(found.stopped)} once started." if found.stopped else "."))
        return
    click.echo(found.text, nl=False)
    click.echo(f"# {found.path}: use it with `ssh -F {found.path} NAME`" +
               ("; ~/.ssh/config includes it, so `ssh NAME` works." if found.installed else
                ", or let `ssh NAME` work everywhere: ptdesk ssh-config --install"), err=True)


def by_alias(ws: Workstation, name: str) -> tuple[Workstation, str]:
    """The workstation and experiment that NAME reaches: `ptdesk ssh` takes what `ptdesk ls` shows
    and `ssh` itself takes (the alias NAME.WORKSTATION for another workstation's experiment)."""
    from ptdesk.core.access.ssh_config import split_alias

    if ws.store.experiment(name) is not None:
        return ws, name
    base, where = split_alias(name)
    if where == ws.name:
        return ws, base
    config = ws.home_config
    if where != LOCAL and where not in config.workstations:
        return ws, name  # not an alias: the experiment's own error says so
    other = Workstation(config, config.workstations.get(where))
    click.get_current_context().call_on_close(other.close)
    return other, base


@click.command("ssh", context_settings={"allow_interspersed_args": False})
@click.option("-t", "tty", is_flag=True, help="Give COMMAND a terminal (for tmux attach, htop, an editor).")
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_workstation(reconcile=True)
def ssh_command(ws: Workstation, tty: bool, name: str, command: tuple[str, ...]) -> None:
    """Open a shell in SSH experiment NAME, or run COMMAND there: ptdesk ssh NAME [-- COMMAND...].

    COMMAND runs word by word, as typed here (for a pipeline: -- sh -c 'a | b'); its exit code is
    ptdesk's.
    """
    if command[:1] == ("--",):
        command = command[1:]
    ws, name = by_alias(ws, name)
    argv = ws.ssh_argv(name, command, options=("-t",) if tty else ())
    client = _ssh_client()
    ws.close()  # exec replaces this process: nothing of it is left to close later
    sys.stdout.flush()
    os.execv(client, argv)


def parse_forward(spec: str) -> tuple[int, int | None]:
    """PORT[:LOCAL] -> (remote port, local port or None for "the same, or a free one")."""
    remote, _, local = spec.partition(":")
    ports = []
    for text in (remote, local) if local else (remote,):
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise InvalidInput(f"{spec!r} is not PORT or PORT:LOCAL (ports are 1-65535).",
                               "For TensorBoard in the experiment, on the same port here: ptdesk forward NAME 6006")
        ports.append(int(text))
    return ports[0], (ports[1] if len(ports) > 1 else None)


def _bindable(port: int) -> bool:
    """Whether a listener could be opened on 127.0.0.1:port now (ssh's bind succeeds, and ours
    fails once ssh listens: that is how `forward` knows the tunnel is up without connecting)."""
    with socket.socket() as probe:
        # SO_REUSEADDR, as ssh's own listener has: the probe never keeps ssh from binding, and a
        # port with only closed connections lingering (TIME_WAIT) counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _local_port(remote: int, local: int | None) -> int:
    if local is not None:
        if not _bindable(local):
            raise InvalidInput(f"Local port {local} is in use here.",
                               f"Pick another (PORT:LOCAL), or leave :LOCAL out for a free one: "
                               f"ptdesk forward NAME {remote}")
        return local
    if _bindable(remote):
        return remote
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@click.command("forward")
@click.argument("name")
@click.argument("spec", metavar="[PORT[:LOCAL]]", required=False)
@pass_workstation(reconcile=True)
def forward(ws: Workstation, name: str, spec: str | None) -> None:
    """Reach a server NAME runs on its own 127.0.0.1:PORT at 127.0.0.1:LOCAL here, until Ctrl-C.

    For a Jupyter experiment leave PORT out: its URL, opened here (on a laptop whose ptdesk knows
    the workstation: --on NAME)."""
    ws, name = by_alias(ws, name)
    experiment = ws.experiment(name)
    if experiment.kind != "ssh":
        _forward_service(ws, experiment, spec)
        return
    if spec is None:
        raise InvalidInput(f"Say which port of {name} to reach here.",
                           f"For TensorBoard on its 127.0.0.1:6006: ptdesk forward {name} 6006")
    remote, local = parse_forward(spec)
    local = _local_port(remote, local)
    argv = ws.ssh_argv(name, options=("-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30",
                                      "-L", f"127.0.0.1:{local}:127.0.0.1:{remote}"))
    _hold(argv, local, name, f"http://127.0.0.1:{local}/",
          f"{name}'s 127.0.0.1:{remote} is at 127.0.0.1:{local} here; Ctrl-C closes the tunnel.",
          refused=f"ptdesk: nothing listens on {remote} in {name} (a connection to 127.0.0.1:{local} was refused "
                  "there); start the server there, or check its port.")


def _forward_service(ws: Workstation, experiment: Experiment, spec: str | None) -> None:
    """A Jupyter (or other web) experiment: its own published port, here, with its URL."""
    from ptdesk.core.access import tunnel

    name, access = experiment.name, experiment.access
    if access is None or experiment.status != "running":
        raise PtdeskError(f"{name!r} is {status_word(experiment.status)}, so nothing answers there.",
                           f"Start it first: ptdesk start {name}")
    port, url = int(str(access.fields["port"])), str(access.fields["url"])
    if spec is not None and parse_forward(spec)[0] != port:
        raise InvalidInput(f"{name} is a {experiment.kind} experiment: only its own port {port} is reachable.",
                           f"Leave the port out: ptdesk forward {name}")
    local = _local_port(port, parse_forward(spec)[1] if spec else None)
    if ws.entry is None:  # on this machine already: nothing to tunnel
        click.echo(url)
        laptop = tunnel.laptop_line(ws.config, port)
        click.echo(f"{name} is served on this machine" + (f"; from your laptop run: {laptop}" if laptop else "."),
                   err=True)
        return
    host = str(access.fields["host"])
    argv = ws.tunnel_argv(port, local)
    here = url.replace(f"{host}:{port}", f"127.0.0.1:{local}", 1)
    _hold(argv, local, name, here, f"{name} on {ws.name} is at 127.0.0.1:{local} here; Ctrl-C closes the tunnel.")


def _hold(argv: list[str], local: int, name: str, url: str, said: str, refused: str | None = None) -> None:
    """Run the tunnel until Ctrl-C, printing `url` once it listens; OpenSSH's `channel N: open
    failed` (one per refused connection) is said once as `refused`, in words."""
    argv[0] = _ssh_client()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    relay = threading.Thread(target=_relay, args=(proc, refused), daemon=True)
    relay.start()
    try:
        _wait_listening(proc, local, name)
        click.echo(url)
        click.echo(said, err=True)
        rc = proc.wait()
    except KeyboardInterrupt:
        click.echo("ptdesk: tunnel closed.", err=True)
        rc = 0
    finally:
        _stop(proc)
        relay.join(timeout=5)  # ssh's last words are printed before ours
    if rc != 0:
        raise PtdeskError(f"The tunnel to {name} ended (ssh exited with {rc}).",
                          f"See ssh's message above; check it logs in: ptdesk ssh {name} true")


def _relay(proc: subprocess.Popen, refused: str | None) -> None:
    """ssh's messages to our stderr, its per-connection refusals turned into one sentence."""
    said = False
    for line in proc.stderr or ():
        if refused and ": open failed: " in line:
            if not said:
                click.echo(refused, err=True)
            said = True
            continue
        click.echo(line, nl=False, err=True)


def _stop(proc: subprocess.Popen) -> None:
    """End the ssh client; one that waits for forwarded connections to close is killed after 5 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_listening(proc: subprocess.Popen, local: int, name: str) -> None:
    deadline = time.monotonic() + FORWARD_READY_TIMEOUT
    while _bindable(local):
        if proc.poll() is not None:
            raise PtdeskError(f"The tunnel to {name} could not be opened (ssh exited with {proc.returncode}).",
                              f"See ssh's message above; check it logs in: ptdesk ssh {name} true")
        if time.monotonic() > deadline:
            raise PtdeskError(f"ssh did not open the tunnel to {name} within {FORWARD_READY_TIMEOUT:.0f} s.",
                              f"Check it logs in: ptdesk ssh {name} true")
        time.sleep(0.05)


COMMANDS = [ssh_config_command, ssh_command, forward]
