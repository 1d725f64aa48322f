"""Ports on this machine's addresses: a free one to publish, whether the engine found it taken, and
the TCP connections ptdesk's SSH clients make."""

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



def tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection with Nagle's algorithm off, for an SSH client (paramiko's own connect leaves it on).

    A key exchange and login is a ping-pong of small messages that paramiko sends in more than one
    write; with Nagle on, a write waits for the ACK of the one before, which the server delays by up
    to 40 ms. A key login over the loopback took 65-110 ms that way and takes about 22 ms without.
    Raises OSError as socket.create_connection does.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock
