"""What the everyday-SSH tests share: OpenSSH through ptdesk's own config, a tiny web server run in
the container, free local ports, and a pure-Python SOCKS5 client (what a browser or VS Code does
through `ssh -D`).

The SSH image has no Python on the test base image; perl-base is in every Debian and Ubuntu, so
the container's web server is a few lines of perl.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.helpers import wait_until

# A minimal HTTP/1.0 server: `perl serve.pl ADDRESS PORT TEXT`, or `perl serve.pl unix PATH TEXT`.
SERVER = r"""
use strict; use IO::Socket::INET; use IO::Socket::UNIX;
my ($where, $port, $text) = @ARGV;
my $s = $where eq "unix"
  ? IO::Socket::UNIX->new(Local => $port, Listen => 16)
  : IO::Socket::INET->new(LocalAddr => $where, LocalPort => $port, Listen => 16, ReuseAddr => 1);
die "listen: $!" unless $s;
while (my $c = $s->accept) {
  while (my $line = <$c>) { last if $line =~ /^\r?\n$/; }
  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($text) . "\r\n\r\n$text";
  close $c;
}
"""


def ssh(config: Path, host: str, *command: str, options: Sequence[str] = (), input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """OpenSSH's client configured only by `config` (-F: ~/.ssh is never read), no prompts."""
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", *options, host, *command],
                          input=input, stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def serve(config: Path, host: str, where: str, port: int | str, text: str) -> None:
    """Start the perl web server in the container, detached from the login that started it."""
    result = ssh(config, host, "cat > /tmp/serve.pl", input=SERVER)
    assert result.returncode == 0, result.stderr
    log = f"/tmp/serve-{str(port).replace('/', '_')}.log"
    result = ssh(config, host, f"nohup perl /tmp/serve.pl {where} {port} '{text}' >{log} 2>&1 </dev/null &",
                 "echo started")
    assert result.returncode == 0 and "started" in result.stdout, result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port here (a bind fails: no connection is made)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


class Tunnel:
    """`ssh -N` with forwards, running until closed; its stderr is kept for the assertions."""

    def __init__(self, config: Path, host: str, *forwards: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o",
                                          "ExitOnForwardFailure=yes", "-N", *forwards, host],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def wait_listening(self, port: int) -> Tunnel:
        wait_until(lambda: listening(port) or self.proc.poll() is not None, timeout=30,
                   message=f"ssh to listen on {port}")
        assert self.proc.poll() is None, f"ssh exited: {self.stderr()}"
        return self

    def stderr(self) -> str:
        return self.log.read_text()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # ssh waits for forwarded connections still open
            self.proc.kill()
            self.proc.wait(timeout=15)
        return self.stderr()


def http_get(port: int, host_header: str = "localhost") -> bytes:
    """GET / through 127.0.0.1:port; the body, or b"" when the connection is closed (or reset)
    without a reply, which is what the ssh client does when sshd refuses the forward."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.settimeout(15)
        try:
            return _get(conn, host_header)
        except ConnectionResetError:
            return b""


def _get(conn: socket.socket, host_header: str) -> bytes:
    conn.sendall(f"GET / HTTP/1.0\r\nHost: {host_header}\r\n\r\n".encode())
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


def socks_get(proxy_port: int, host: str, port: int) -> bytes:
    """GET / from host:port through a SOCKS5 proxy (the name resolved by the proxy, like curl
    --socks5-hostname): the body, or b"" when the proxy closes the connection instead."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=15) as conn:
        conn.settimeout(15)
        conn.sendall(b"\x05\x01\x00")  # version 5, one method: no authentication
        assert _recv_exactly(conn, 2) == b"\x05\x00"
        name = host.encode()
        conn.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
        reply = _recv_exactly(conn, 10)  # OpenSSH answers with an IPv4-shaped reply
        if len(reply) < 2 or reply[1] != 0:
            return b""
        try:
            return _get(conn, host)
        except ConnectionResetError:
            return b""


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := conn.recv(size - len(data))):
        data += chunk
    return data


def ptdesk_script() -> str:
    """The installed `ptdesk` entry point, as a person runs it."""
    return str(Path(sys.executable).parent / "ptdesk")
