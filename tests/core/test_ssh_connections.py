"""The TCP connections ptdesk's SSH clients log in over have Nagle's algorithm off.

With it on, paramiko's handshake waits on the server's delayed ACKs: a key login over the loopback
took 65-110 ms instead of about 22 ms (bench/launch.py's proof, every rotation's proof). No engine:
a plain local server that speaks the first bytes of SSH stands in for sshd.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk.core.access import sshcheck
from ptdesk.core.host.ports import tcp_connect


@pytest.fixture
def banner_server() -> Iterator[int]:
    """A port on 127.0.0.1 whose server sends an SSH banner to each connection, then waits."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            held.append(conn)

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone leaves it blocked)
    server.close()
    serving.join(5)
    for conn in held:
        conn.close()


def nagle_off(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_tcp_connect_turns_nagle_off(banner_server: int) -> None:
    with tcp_connect("127.0.0.1", banner_server, timeout=5) as sock:
        assert nagle_off(sock)


def test_a_refused_port_raises_the_socket_error_itself() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(ConnectionRefusedError):
        tcp_connect("127.0.0.1", port, timeout=5)


def test_the_readiness_proof_logs_in_over_a_connection_without_nagle(banner_server: int) -> None:
    sock = sshcheck.answering("127.0.0.1", banner_server, timeout=5)
    assert sock is not None, "the banner was not seen"
    try:
        assert nagle_off(sock)
        assert sock.recv(4, socket.MSG_PEEK) == b"SSH-"  # left unread, for the login that follows
    finally:
        sock.close()


def test_a_login_attempt_on_its_own_connects_without_nagle(banner_server: int, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """try_login without a connection handed to it makes its own through tcp_connect (paramiko's own
    connect would leave Nagle on); what paramiko is given is looked at, then the attempt goes on."""
    seen: list[bool] = []
    real = sshcheck.tcp_connect

    def watched(host: str, port: int, timeout: float) -> socket.socket:
        sock = real(host, port, timeout)
        seen.append(nagle_off(sock))
        return sock

    monkeypatch.setattr(sshcheck, "tcp_connect", watched)
    from ptdesk.core.base import keys, private_files

    owner, host = keys.generate(), keys.generate()
    key_file = tmp_path / "id_ed25519"
    private_files.write_secret(key_file, owner.private_pem, 0o600)
    result = sshcheck.try_login("127.0.0.1", banner_server, "ptdesk", key_file, host.public_line,
                                command=None, timeout=1)
    assert seen == [True]
    assert not result.ok  # the stand-in server never finishes a handshake
