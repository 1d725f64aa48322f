"""Prove that an SSH login works, or that it is refused, with the server's host key pinned (paramiko).

Used to report a launch as ready only once the owner's key really logs in, and to prove each step
of a key rotation: the new key works, the old one is refused.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.waiting import next_delay
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
              command: str | None = "id -u", timeout: float = 10.0) -> LoginResult:
    """One login attempt with a key and the host key pinned; never raises for a refusal."""
    import paramiko

    client = _client(host, port, host_public_key)
    try:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        client.connect(host, port=port, username=user, pkey=pkey, allow_agent=False, look_for_keys=False,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
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


def wait_for_login(host: str, port: int, user: str, key_file: Path, host_public_key: str,
                   timeout: float, is_alive: Callable[[], bool] = lambda: True) -> LoginResult:
    """Poll until the key logs in (server up and key accepted), or raise LaunchFailed at timeout.

    A refusal is retried too: sshd may answer before the entrypoint finished preparing the account.
    `is_alive` lets the caller stop early when the container died.
    """
    started = time.monotonic()
    deadline = started + timeout
    last = LoginResult(False, "not tried")
    while time.monotonic() < deadline:
        last = try_login(host, port, user, key_file, host_public_key, command=None,
                         timeout=max(1.0, min(5.0, deadline - time.monotonic())))
        if last.ok:
            return last
        if last.detail == "host key mismatch":
            raise LaunchFailed(f"The server on port {port} presented a different host key than ptdesk placed.",
                               "Something else may be listening on that port; check with `ptdesk doctor`.")
        if not is_alive():
            raise LaunchFailed("The SSH container stopped before its server accepted a login.",
                               "Read its output with: ptdesk logs NAME")
        time.sleep(next_delay(time.monotonic() - started))
    raise LaunchFailed(f"The SSH server on port {port} did not accept the key within {timeout:.0f} s ({last.detail}).",
                       "Check the container's output with `ptdesk logs NAME`; raise ready_timeout if the host is slow.")
