"""Ports on this machine's addresses: a free one to publish, and whether the engine found it taken."""

from __future__ import annotations

import socket

from ptdesk.errors import PtdeskError

# Tries at a free port before giving up (another process may take the one picked before the start).
PORT_ATTEMPTS = 5


def free_port(address: str) -> int:
    """A port free on `address` right now, chosen the way the kernel picks ephemeral ports.

    ptdesk publishes this fixed port instead of letting the engine pick one at each start, so a
    stopped and started experiment keeps its address: the ssh configs and bookmarks people were
    given keep working.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def port_taken(exc: PtdeskError) -> bool:
    text = exc.message
    return "port is already allocated" in text or "address already in use" in text

