"""Forwarding in SSH experiments, end to end with OpenSSH's client through ptdesk's own ssh config:
-L, -D (SOCKS) and -W forwards reach the experiment's own loopback (what VS Code
Remote-SSH, JetBrains Gateway and a TensorBoard tunnel use); every other destination — another
experiment's container, the Docker bridge gateway, a port on the host, the network — is refused
by sshd, and so are Unix-socket forwards, -R and agent forwarding.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.base import keys
from ptdesk.core.engine.client import Engine
from tests.support.helpers import wait_until
from tests.support.workday_support import Tunnel, free_port, http_get, listening, ptdesk_script, serve, socks_get, ssh

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

WEB = 8765  # the port the test's web server listens on inside the containers
REFUSED = "administratively prohibited"


@pytest.fixture(scope="module")
def boxes(module_desk: Ptdesk) -> dict[str, dict]:
    """Two SSH experiments, each running a web server: `fwd` on its loopback only, `other` on
    every address (so `fwd` could reach it over the bridge network if sshd let a forward through)."""
    made = {name: module_desk.new("ssh", "--name", name) for name in ("fwd", "other")}
    config = module_desk.home / "ssh" / "config"
    serve(config, "fwd", "127.0.0.1", WEB, "hello from fwd")
    serve(config, "fwd", "unix", "/tmp/web.sock", "hello over a socket")
    serve(config, "other", "0.0.0.0", WEB, "hello from other")
    return made


@pytest.fixture(scope="module")
def config(module_desk: Ptdesk, boxes: dict) -> Path:
    return module_desk.home / "ssh" / "config"


@pytest.fixture(scope="module")
def targets(boxes: dict, engine: Engine) -> dict[str, str]:
    """Addresses that are not fwd's loopback: the other container, the bridge gateway (the host)."""
    networks = engine.inspect(boxes["fwd"]["id"])["NetworkSettings"]
    other = engine.inspect(boxes["other"]["id"])["NetworkSettings"]
    return {"other": other["IPAddress"], "gateway": networks["Gateway"]}


@pytest.fixture(scope="module")
def host_server(targets: dict[str, str]) -> Iterator[int]:
    """A port listening on the host on every address (the bridge gateway included)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_authorized_keys_lines_say_what_sshd_config_says(boxes: dict, engine: Engine) -> None:
    rc, out = engine.exec(boxes["fwd"]["id"], ["sshd", "-T", "-f", "/etc/ssh/sshd_config"])
    assert rc == 0, out
    effective = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    assert effective["permitopen"].split() == list(keys.PERMIT_OPEN)
    assert (effective["allowtcpforwarding"], effective["allowstreamlocalforwarding"]) == ("local", "no")
    assert effective["disableforwarding"] == "no" and effective["permitlisten"] == "none"
    assert (effective["allowagentforwarding"], effective["x11forwarding"], effective["permittunnel"]) == (
        "no", "no", "no")
    line = engine.read_file(boxes["fwd"]["id"], "/etc/ptdesk/authorized_keys/ptdesk").decode().splitlines()[0]
    options = line.split(" ssh-ed25519 ")[0].split(",")
    assert options[:3] == ["restrict", "pty", "port-forwarding"]
    assert [o.removeprefix("permitopen=").strip('"') for o in options[3:]] == list(keys.PERMIT_OPEN)


def test_local_forward_to_the_experiments_loopback_returns_its_page(config: Path, tmp_path: Path) -> None:
    by_address, by_name = free_port(), free_port()
    tunnel = Tunnel(config, "fwd", "-L", f"127.0.0.1:{by_address}:127.0.0.1:{WEB}",
                    "-L", f"127.0.0.1:{by_name}:localhost:{WEB}", log=tmp_path / "ssh.log")
    try:
        tunnel.wait_listening(by_address).wait_listening(by_name)
        assert wait_until(lambda: http_get(by_address), timeout=30, message="the page") == b"hello from fwd"
        assert http_get(by_name) == b"hello from fwd"
    finally:
        tunnel.close()


def test_dynamic_forward_reaches_the_loopback_and_nothing_else(config: Path, tmp_path: Path,
                                                               targets: dict[str, str], host_server: int) -> None:
    proxy = free_port()
    tunnel = Tunnel(config, "fwd", "-D", f"127.0.0.1:{proxy}", log=tmp_path / "ssh.log")
    try:
        tunnel.wait_listening(proxy)
        assert wait_until(lambda: socks_get(proxy, "127.0.0.1", WEB), timeout=30) == b"hello from fwd"
        assert socks_get(proxy, "localhost", WEB) == b"hello from fwd"
        for host, port in ((targets["other"], WEB), (targets["gateway"], host_server), ("example.org", 80),
                           ("127.0.0.11", 53)):
            assert socks_get(proxy, host, port) == b"", f"{host}:{port} was reachable through -D"
    finally:
        err = tunnel.close()
    assert err.count(REFUSED) >= 4, err


@pytest.mark.parametrize("target", ["other", "gateway", "host", "network"])
def test_local_forward_anywhere_else_is_refused(config: Path, tmp_path: Path, targets: dict[str, str],
                                                host_server: int, target: str) -> None:
    destination = {"other": f"{targets['other']}:{WEB}", "gateway": f"{targets['gateway']}:{host_server}",
                   "host": f"{targets['gateway']}:22", "network": "example.org:80"}[target]
    local = free_port()
    tunnel = Tunnel(config, "fwd", "-L", f"127.0.0.1:{local}:{destination}", log=tmp_path / "ssh.log")
    try:
        tunnel.wait_listening(local)
        assert http_get(local) == b""  # sshd refuses the channel: the client closes the connection
    finally:
        err = tunnel.close()
    assert REFUSED in err, err


def test_the_other_container_is_not_reachable_directly_either(config: Path, targets: dict[str, str]) -> None:
    """Two layers: sshd refuses the forward ("administratively prohibited", above), and the
    experiments' own network carries no traffic between containers, so fwd cannot open the other
    container's port itself either."""
    probe = ssh(config, "fwd", f"timeout 5 bash -c 'exec 3<>/dev/tcp/{targets['other']}/{WEB}' && echo open")
    assert probe.stdout.strip() != "open", probe.stdout


def test_unix_socket_forwards_are_refused_even_to_the_persons_own_socket(config: Path, tmp_path: Path,
                                                                        module_desk: Ptdesk) -> None:
    """sshd applies PermitOpen to socket paths too (exact names only): with forwards confined to the
    loopback, no socket path is permitted, so the image says AllowStreamLocalForwarding no.
    The socket exists and belongs to the user: the refusal is the policy's."""
    assert ssh(config, "fwd", "test -S /tmp/web.sock && test -O /tmp/web.sock").returncode == 0
    local = free_port()
    tunnel = Tunnel(config, "fwd", "-L", f"127.0.0.1:{local}:/tmp/web.sock", log=tmp_path / "ssh.log")
    try:
        tunnel.wait_listening(local)
        page = http_get(local)
    finally:
        err = tunnel.close()
    # The client only hears "connect failed"; sshd says why.
    assert page == b"" and "open failed" in err, err
    wait_until(lambda: "refused streamlocal port forward" in module_desk.ok("logs", "fwd", "--tail", "50"),
               timeout=15, message="sshd's refusal in its log")


def test_stdio_forward_follows_the_same_rule(config: Path) -> None:
    """-W (ProxyJump's transport) is a forward too: to the loopback yes, elsewhere no."""
    request = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
    result = ssh(config, "fwd", options=("-W", f"127.0.0.1:{WEB}"), input=request)
    assert result.stdout.endswith("hello from fwd"), result.stderr
    result = ssh(config, "fwd", options=("-W", "example.org:80"), input=request)
    assert result.returncode == 255 and REFUSED in result.stderr


def test_remote_forwards_are_refused(config: Path) -> None:
    for spec in ("0:127.0.0.1:22", "/tmp/listen.sock:127.0.0.1:22"):
        result = ssh(config, "fwd", options=("-o", "ExitOnForwardFailure=yes", "-N", "-R", spec))
        assert result.returncode == 255 and "forwarding failed" in result.stderr, (spec, result.stderr)


def test_agent_forwarding_is_refused(config: Path, tmp_path: Path) -> None:
    agent = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True)
    assert agent.returncode == 0, agent.stderr
    pid = int(agent.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        result = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-A", "fwd", "echo agent=${SSH_AUTH_SOCK:-none}"],
            env={"PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(tmp_path / "agent.sock")},
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["kill", str(pid)], check=False)
    assert result.returncode == 0 and result.stdout.strip() == "agent=none", result.stdout + result.stderr


def test_x11_forwarding_is_refused(config: Path) -> None:
    result = subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes",
         "fwd", "echo display=${DISPLAY:-none}"],
        env={"PATH": "/usr/bin:/bin", "DISPLAY": ":99"}, capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stdout.strip() == "display=none", result.stdout + result.stderr


def test_ptdesk_forward_prints_the_local_url_and_closes_on_ctrl_c(module_desk: Ptdesk, boxes: dict) -> None:
    proc = subprocess.Popen([ptdesk_script(), "forward", "fwd", str(WEB)], env=module_desk.env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once the tunnel listens
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), (url, proc.stderr and proc.stderr.read())
        local = int(url.rsplit(":", 1)[1].rstrip("/"))
        assert listening(local)
        assert http_get(local) == b"hello from fwd"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    wait_until(lambda: not listening(local), timeout=15, message="the tunnel to close")


@pytest.mark.parametrize(("args", "says"), [
    (("forward", "nope", "80"), "No experiment named 'nope'"),
    (("forward", "fwd", "http"), "is not PORT or PORT:LOCAL"),
    (("forward", "fwd", "70000"), "is not PORT or PORT:LOCAL"),
    (("forward", "fwd", "80:0"), "is not PORT or PORT:LOCAL"),
])
def test_forward_bad_input_is_one_clear_line(module_desk: Ptdesk, boxes: dict, args: tuple, says: str) -> None:
    assert says in module_desk.fails(*args)[0]


def test_forward_to_a_port_nothing_listens_on_says_so_once(module_desk: Ptdesk, boxes: dict) -> None:
    proc = subprocess.Popen([ptdesk_script(), "forward", "fwd", "9999"], env=module_desk.env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        local = int(url.rsplit(":", 1)[1].rstrip("/"))
        for _ in range(3):  # three requests, as a browser retrying does
            assert http_get(local) == b""
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert err.count("nothing listens on 9999 in fwd") == 1, err
    assert "open failed" not in err and "Traceback" not in err
