"""A service published on a workstation's loopback, reached from the person's own machine.

ptdesk mostly runs on the workstation over SSH, and publishes ports on 127.0.0.1 by default (never
open to the network): a URL like http://127.0.0.1:PORT/lab?token=… then opens only on the box.
What opens it in the person's own browser is an SSH local forward from their machine, through
the SSH login they already use: `laptop_line` is that command, and `forward_argv` is the one
`ptdesk forward` runs on a laptop whose ptdesk knows the workstation (`workstations add`).
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from ptdesk.config import LOCAL, Config, _host_name
from ptdesk.config_workstations import WorkstationEntry


def loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _in_brackets(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def laptop_line(config: Config, port: int, env: Mapping[str, str] | None = None) -> str | None:
    """The `ssh -L` command to run on the person's own machine so that 127.0.0.1:PORT there reaches
    PORT published here; None where the port is published beyond loopback (its URL opens as it is)
    or the workstation is another one (`ptdesk forward NAME --on WORKSTATION` does it from here).

    When the person is logged in over SSH, SSH_CONNECTION names the address and port their own
    machine reached this one at: the line uses those, so it works from where they sit."""
    if config.workstation != LOCAL or not loopback(config.bind_address):
        return None
    env = os.environ if env is None else env
    fields = (env.get("SSH_CONNECTION") or "").split()
    server, server_port = (fields[2], fields[3]) if len(fields) == 4 else (_host_name(), "22")
    user = env.get("SUDO_USER") or env.get("USER") or env.get("LOGNAME") or getpass.getuser()
    target = f"{user}@{server}"
    via = [] if server_port == "22" else ["-p", server_port]
    return shlex.join(["ssh", "-N", "-L", f"{port}:{_in_brackets(config.bind_address)}:{port}", *via, target])


def forward_argv(known_hosts: Path, identity: Path, entry: WorkstationEntry, target: tuple[str, int],
                 local: int) -> list[str]:
    """OpenSSH, logged in to the workstation as ptdesk reaches its engine (its key, its pinned host
    key, nothing from ~/.ssh/config), forwarding 127.0.0.1:LOCAL here to `target` there."""
    host, port = target
    return ["ssh", "-F", "/dev/null", "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
            "-o", "ServerAliveInterval=30", "-o", "IdentitiesOnly=yes", "-i", str(identity),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-p", str(entry.port),
            "-L", f"127.0.0.1:{local}:{_in_brackets(host)}:{port}", f"{entry.user}@{entry.host}"]
