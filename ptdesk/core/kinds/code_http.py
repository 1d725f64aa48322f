"""How ptdesk itself talks to code-server: log in with the password, open the workbench, make a
WebSocket round trip the way the editor does, and read its heartbeat (for the cull).

Every connection goes through jupyter_tls.connect: plain HTTP on loopback, otherwise TLS that must
present exactly the experiment's pinned certificate. The Host and Origin headers carry the address
ptdesk connects to, which is one of the names the experiment's Host check accepts.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import struct
import urllib.parse
from dataclasses import dataclass

from ptdesk.core.kinds import jupyter_tls

COOKIE = "code-server-session"


@dataclass(frozen=True)
class Answer:
    status: int  # 0: nothing answered (or not the pinned certificate)
    headers: dict[str, str]
    body: bytes = b""


def _host_header(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def origin(host: str, port: int, tls: bool) -> str:
    return f"{'https' if tls else 'http'}://{_host_header(host, port)}"


def call(host: str, port: int, method: str, path: str, cert_pem: str | None, *, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 5.0) -> Answer:
    """One HTTP request (no redirects followed): its status, headers (lower-case names) and body."""
    try:
        conn = jupyter_tls.connect(host, port, cert_pem, timeout)
    except OSError:
        return Answer(0, {})
    try:
        conn.request(method, path, body=body, headers={"Host": _host_header(host, port), **(headers or {})})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    except (OSError, http.client.HTTPException, ValueError):
        return Answer(0, {})
    finally:
        conn.close()


def login(host: str, port: int, password: str, cert_pem: str | None, timeout: float = 5.0) -> str | None:
    """POST the password to /login as the login page does: the session cookie ("name=value"), or None
    when code-server did not let us in (wrong password, not up yet, another certificate)."""
    form = urllib.parse.urlencode({"password": password, "base": "."}).encode()
    answer = call(host, port, "POST", "/login", cert_pem, body=form, timeout=timeout,
                  headers={"Content-Type": "application/x-www-form-urlencoded",
                           "Origin": origin(host, port, cert_pem is not None)})
    cookie = answer.headers.get("set-cookie", "")
    if answer.status in (200, 302, 303) and cookie.startswith(f"{COOKIE}="):
        return cookie.split(";", 1)[0]
    return None


def workbench(host: str, port: int, cookie: str | None, cert_pem: str | None, timeout: float = 5.0) -> Answer:
    """GET the editor's page for /workspace (with the session cookie, or without one)."""
    headers = {"Cookie": cookie} if cookie else {}
    return call(host, port, "GET", "/?folder=/workspace", cert_pem, headers=headers, timeout=timeout)


def heartbeat(host: str, port: int, cert_pem: str | None, timeout: float = 5.0) -> float | None:
    """code-server's /healthz `lastHeartbeat` in seconds since the epoch; None when it did not say.
    It beats while an editor is connected (and on requests), so its age is how long nobody used it."""
    answer = call(host, port, "GET", "/healthz", cert_pem, timeout=timeout)
    try:
        value = json.loads(answer.body).get("lastHeartbeat") if answer.status == 200 else None
    except (ValueError, AttributeError):
        return None
    return value / 1000.0 if isinstance(value, int | float) and value > 0 else None


def websocket_round_trip(host: str, port: int, cookie: str | None, cert_pem: str | None,
                         timeout: float = 10.0, headers: dict[str, str] | None = None) -> str | None:
    """Open the editor's WebSocket (the remote agent connection the workbench opens), send the
    first message of its handshake and read the server's answer. None when the round trip worked;
    otherwise what went wrong, in words. `headers` replace the ones a browser on this address sends."""
    key = base64.b64encode(os.urandom(16)).decode()
    query = urllib.parse.urlencode({"reconnectionToken": os.urandom(16).hex(), "reconnection": "false",
                                    "skipWebSocketFrames": "false"})
    headers = {"Host": _host_header(host, port), "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
               "Origin": origin(host, port, cert_pem is not None), **({"Cookie": cookie} if cookie else {}),
               **(headers or {})}  # a test's own Host or Origin
    try:
        conn = jupyter_tls.connect(host, port, cert_pem, timeout)
    except OSError as exc:
        return f"nothing answered ({exc})"
    sock = conn.sock
    assert sock is not None
    try:
        request = f"GET /?{query} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(request.encode())
        reader = _Reader(sock)
        head = reader.until(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            return f"the WebSocket upgrade was answered {status!r}"
        # VS Code's remote protocol: a control message {"type": "auth"} asks the server to sign.
        sock.sendall(_frame(_control({"type": "auth", "auth": "00000000000000000000", "data": key})))
        reply = reader.message()
        return None if reply else "the WebSocket closed without an answer"
    except (OSError, ValueError) as exc:
        return f"the WebSocket failed ({exc})"
    finally:
        conn.close()


def _control(message: dict) -> bytes:
    """A VS Code protocol message: type 2 (control), id 0, ack 0, then the length and the JSON."""
    data = json.dumps(message).encode()
    return struct.pack(">BIII", 2, 0, 0, len(data)) + data


def _frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (a client must mask)."""
    mask = os.urandom(4)
    size = len(payload)
    head = struct.pack(">BB", 0x82, 0x80 | size) if size < 126 else struct.pack(">BBH", 0x82, 0x80 | 126, size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class _Reader:
    """Reads what a socket sends, keeping what came after the part asked for (the HTTP head and
    the first frame may arrive in one read)."""

    def __init__(self, sock) -> None:  # noqa: ANN001 - a socket or an SSL socket
        self.sock, self.buffer = sock, b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ValueError("the server closed the connection")
        self.buffer += chunk

    def until(self, marker: bytes, limit: int = 65536) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise ValueError("the answer's head is too long")
            self._more()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def message(self) -> bytes:
        """The payload of the first data frame the server sends (pings and pongs skipped)."""
        while True:
            first, second = self.exact(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self.exact(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self.exact(8))[0]
            payload = self.exact(size)
            opcode = first & 0x0F
            if opcode == 0x8:
                return b""
            if opcode in (0x1, 0x2):
                return payload
