"""Prove that an SSH login works, or that it is refused, with the server's host key pinned (paramiko).

Used to report a launch as ready only once the owner's key really logs in, and to prove each step
of a key rotation: the new key works, the old one is refused.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.waiting import next_delay
from ptdesk.core.host.ports import tcp_connect
from ptdesk.errors import LaunchFailed

if TYPE_CHECKING:
    import paramiko  # imported by the first login proof, not by importing this module

# Polling a server that is still starting makes paramiko's transport thread log tracebacks;
# the outcome is reported through LoginResult instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    detail: str  # "logged in", "refused: ...", "host key mismatch", "unreachable: ..."
    output: str = ""


def _client(host: str, port: int, host_public_key: str) -> paramiko.SSHClient:
    import paramiko

    client = paramiko.SSHClient()
    key_type, blob = host_public_key.split()[:2]
    where = host if port == 22 else f"[{host}]:{port}"
    client.get_host_keys().add(where, key_type, paramiko.PKey.from_type_string(key_type, _b64(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def try_login(host: str, port: int, user: str, key_file: Path, host_public_key: str,
              command: str | None = "id -u", timeout: float = 10.0, sock: socket.socket | None = None) -> LoginResult:
    """One login attempt with a key and the host key pinned; never raises for a refusal.
    `sock`: a connection to host:port to log in over (see `answering`); closed either way."""
    try:
        import paramiko

        client = _client(host, port, host_public_key)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    try:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        if sock is None:
            sock = tcp_connect(host, port, timeout)  # (not paramiko's own: see tcp_connect)
        client.connect(host, port=port, username=user, pkey=pkey, allow_agent=False, look_for_keys=False,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, sock=sock)
        output = ""
        if command:
            _, stdout, _ = client.exec_command(command, timeout=timeout)
            output = stdout.read().decode(errors="replace").strip()
        return LoginResult(True, "logged in", output)
    except paramiko.BadHostKeyException:
        return LoginResult(False, "host key mismatch")
    except paramiko.AuthenticationException as exc:
        return LoginResult(False, f"refused: {exc}")
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc) or "Server" in str(exc) and "not found" in str(exc):
            return LoginResult(False, "host key mismatch")
        return LoginResult(False, f"unreachable: {exc}")
    except (OSError, EOFError) as exc:
        return LoginResult(False, f"unreachable: {exc}")
    finally:
        client.close()
        if sock is not None:
            sock.close()  # paramiko closes it with its transport; not if the key file failed first


BANNER_POLL = 0.01  # seconds between looks for the server's banner: a look is one local connect, no SSH

def load() -> None:
    """Import paramiko (and the cryptography it loads), ~0.05 s: a launch calls this in a thread of
    its own while the engine starts the container, so the first login finds it imported."""
    import paramiko  # noqa: F401


def answering(host: str, port: int, timeout: float) -> socket.socket | None:
    """A connection to the port on which an SSH server has sent its banner (left unread, for the
    login to use: no connection of its own that sshd would count as one that never logged in), or
    None when none answers within `timeout` seconds.

    Far cheaper than a login attempt (no key exchange, no thread), so a starting server can be
    looked at every few milliseconds: while nothing listens behind a published port the engine's
    proxy closes the connection at once (or the connect is refused).
    """
    try:
        sock = tcp_connect(host, port, timeout)
    except OSError:
        return None
    try:
        if sock.recv(4, socket.MSG_PEEK).startswith(b"SSH-"):
            return sock
    except OSError:
        pass
    sock.close()
    return None


def _await_banner(host: str, port: int, until: float) -> tuple[socket.socket | None, bool]:
    """Look for the banner every BANNER_POLL seconds until it shows or `until` (monotonic) comes:
    (the answering connection or None, whether it was missed at least once first)."""
    missed = False
    while (left := until - time.monotonic()) > 0:
        if (sock := answering(host, port, left)) is not None:
            return sock, missed
        missed = True
        time.sleep(max(0.0, min(BANNER_POLL, until - time.monotonic())))
    return None, missed


def wait_for_login(host: str, port: int, user: str, key_file: Path, host_public_key: str,
                   timeout: float, is_alive: Callable[[], bool] = lambda: True) -> LoginResult:
    """Poll until the key logs in (server up and key accepted), or raise LaunchFailed at timeout.

    While the server is not up yet only its banner is looked for, every BANNER_POLL seconds, and
    the login is tried the moment it shows: readiness is seen within milliseconds, not within a
    login attempt plus a back-off. A refusal is retried too (after a back-off): sshd may answer
    before the entrypoint finished preparing the account. `is_alive` lets the caller stop early
    when the container died.
    """
    started = time.monotonic()
    deadline = started + timeout
    last = LoginResult(False, "not tried")
    # Right after a start nothing listens yet: look for the banner before the first login attempt.
    sock, _ = _await_banner(host, port, min(deadline, started + next_delay(0.0)))
    while time.monotonic() < deadline:
        last = try_login(host, port, user, key_file, host_public_key, command=None,
                         timeout=max(1.0, min(5.0, deadline - time.monotonic())), sock=sock)
        sock = None  # the attempt closed it
        if last.ok:
            return last
        if last.detail == "host key mismatch":
            raise LaunchFailed(f"The server on port {port} presented a different host key than ptdesk placed.",
                               "Something else may be listening on that port; check with `ptdesk doctor`.")
        if not is_alive():
            raise LaunchFailed("The SSH container stopped before its server accepted a login.",
                               "Read its output with: ptdesk logs NAME")
        pause_until = min(deadline, time.monotonic() + next_delay(time.monotonic() - started))
        missed = False
        if last.detail.startswith("unreachable"):  # not up yet: try again the moment it answers
            sock, missed = _await_banner(host, port, pause_until)
        if not missed:  # a refusal, or a server that answered all along: back off as before
            if sock is not None:
                sock.close()  # not held open through the back-off
                sock = None
            time.sleep(max(0.0, pause_until - time.monotonic()))
    if sock is not None:
        sock.close()  # it answered just as the time ran out
    raise LaunchFailed(f"The SSH server on port {port} did not accept the key within {timeout:.0f} s ({last.detail}).",
                       "Check the container's output with `ptdesk logs NAME`; raise ready_timeout if the host is slow.")
