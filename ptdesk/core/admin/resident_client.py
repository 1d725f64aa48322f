"""Asking a resident ptdesk (`ptdesk serve`) instead of connecting to every engine again.

Deliberately light (socket and json only): the CLI imports this before, and instead of, the Docker
SDK. Every failure means "no resident answer" (None), and the caller does the work itself: a
resident process is a shortcut, never a dependency.

The socket is PTDESK_HOME/run/ptdesk.sock (0600 in a 0700 folder); the server also checks the
peer's uid. A request carries a stamp of the settings the CLI resolved (config.toml and PTDESK_*
variables); a server started with other settings says so and the CLI does the work itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

SOCKET_NAME = "ptdesk.sock"
ASK_TIMEOUT = 3.0  # a live server answers in milliseconds; one that hangs must not hang the CLI
MAX_MESSAGE = 16 * 1024 * 1024


def socket_path(home: Path) -> Path:
    return home / "run" / SOCKET_NAME


def settings_stamp(home: Path, env: dict[str, str] | None = None) -> str:
    """What decides a listing's result: config.toml's bytes and the PTDESK_* variables."""
    env = dict(os.environ) if env is None else env
    sha = hashlib.sha256()
    with contextlib.suppress(OSError):
        sha.update((home / "config.toml").read_bytes())
    for key in sorted(k for k in env if k.startswith("PTDESK_") or k == "DOCKER_HOST"):
        sha.update(f"\0{key}={env[key]}".encode())
    return sha.hexdigest()


def ask(home: Path, request: dict[str, Any], timeout: float = ASK_TIMEOUT) -> dict[str, Any] | None:
    """The server's answer to one request, or None when there is no (fitting) server."""
    path = socket_path(home)
    if os.environ.get("PTDESK_RESIDENT") == "off" or not path.exists():  # off: always do the work here
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps({**request, "stamp": settings_stamp(home)}).encode() + b"\n")
            data = read_line(sock)
    except OSError:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and answer.get("ok") else None


def read_line(sock: socket.socket) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_MESSAGE:
            break
    return b"".join(chunks)
