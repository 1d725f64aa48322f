"""Hardened SSH experiment containers, end to end: the real CLI, engine, sshd, paramiko and OpenSSH.

One container (module-scoped) serves every test that only looks at it; tests that stop, restart,
remove or relaunch under other settings make their own.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
import pytest

from ptdesk.core.base import keys
from ptdesk.core.engine.client import Engine
from tests.support.helpers import SSH_IMAGE, wait_until

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

SSH_FIELDS = {"host", "port", "user", "identity_file", "known_hosts", "host_key_fingerprint", "command"}
# logged_in: who is logged in right now (ptdesk.core.access.sessions), for the SSH experiments of this home.
TOP_FIELDS = {"name", "id", "kind", "owner", "image", "status", "gpus", "ssh", "environment", "logged_in",
              "workstation"}
# KILL: ending a revoked person's processes (ptdesk.core.access.accounts; the README's security model).
SSHD_CAPS = {"SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "AUDIT_WRITE", "KILL"}
POLICY = Path(__file__).with_name("sshd-policy.txt")
GIB, MIB = 1024**3, 1024**2


@pytest.fixture(scope="module")
def box(module_desk: Ptdesk) -> dict:
    """One SSH experiment with explicit limits, shared by the read-only tests below."""
    return module_desk.new("ssh", "--name", "box", "--memory", "1g", "--cpus", "1", "--shm-size", "256m")


# --- helpers ------------------------------------------------------------------------------------


def pinned_client(host: str, port: int, host_public_line: str) -> paramiko.SSHClient:
    """A paramiko client that trusts exactly one host key and rejects anything else."""
    client = paramiko.SSHClient()
    key_type, blob = host_public_line.split()[:2]
    client.get_host_keys().add(f"[{host}]:{port}", key_type,
                               paramiko.PKey.from_type_string(key_type, base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def host_key_of(access: dict) -> str:
    """The pinned host key (type and base64) from the known_hosts line ptdesk printed."""
    where, key_type, blob = access["known_hosts"].split()
    assert where == f"[{access['host']}]:{access['port']}"
    return f"{key_type} {blob}"


def login(access: dict, key_file: str | Path, command: str = "id -u", user: str | None = None,
          host_key: str | None = None) -> str:
    """Log in with the host key pinned, no agent and no default keys; returns the command's output."""
    client = pinned_client(access["host"], access["port"], host_key or host_key_of(access))
    try:
        client.connect(access["host"], port=access["port"], username=user or access["user"],
                       pkey=paramiko.Ed25519Key.from_private_key_file(str(key_file)),
                       allow_agent=False, look_for_keys=False, timeout=15, banner_timeout=15, auth_timeout=15)
        _, stdout, _ = client.exec_command(command, timeout=15)
        output = stdout.read().decode().strip()
        assert stdout.channel.recv_exit_status() == 0
        return output
    finally:
        client.close()


def ssh_argv(access: dict, *options: str) -> list[str]:
    """The printed `command`, run as printed, with extra client options before the destination."""
    argv = shlex.split(access["command"])
    return [argv[0], "-o", "BatchMode=yes", *options, *argv[1:]]


def run_ssh(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def transport(access: dict) -> paramiko.Transport:
    """A bare SSH transport with the host key checked, to try authentication methods one by one."""
    t = paramiko.Transport((access["host"], access["port"]))
    t.start_client(timeout=15)
    served = t.get_remote_server_key()
    assert f"{served.get_name()} {served.get_base64()}" == host_key_of(access)
    return t


# --- the launch's output ------------------------------------------------------------------------


def test_new_json_has_exactly_the_documented_fields(box: dict, module_desk: Ptdesk) -> None:
    assert set(box) == TOP_FIELDS
    assert box["kind"] == "ssh" and box["name"] == "box" and box["status"] == "running"
    assert box["gpus"] == [] and box["image"] == SSH_IMAGE and box["owner"]
    ssh = box["ssh"]
    assert set(ssh) == SSH_FIELDS
    assert ssh["host"] == "127.0.0.1" and isinstance(ssh["port"], int) and ssh["user"] == "ptdesk"
    assert os.path.isabs(ssh["identity_file"])
    assert module_desk.assert_owner_key(box["owner"]) == Path(ssh["identity_file"])
    assert len(ssh["known_hosts"].splitlines()) == 1
    # The fingerprint is the one the running server really presents.
    t = transport(ssh)
    try:
        served = t.get_remote_server_key()
    finally:
        t.close()
    digest = base64.b64encode(hashlib.sha256(served.asbytes()).digest()).decode().rstrip("=")
    assert ssh["host_key_fingerprint"] == f"SHA256:{digest}" == keys.fingerprint(ssh["known_hosts"].split(None, 1)[1])
    # `ls --json` describes it the same way.
    assert module_desk.listed(all=False)["box"] == box


def test_key_login_with_pinned_host_key_is_not_root(box: dict, module_desk: Ptdesk) -> None:
    uid = login(box["ssh"], box["ssh"]["identity_file"])
    assert uid != "0"
    assert uid == str(module_desk.config.uid)


def test_openssh_client_logs_in_with_the_printed_command(box: dict, module_desk: Ptdesk) -> None:
    result = run_ssh([*ssh_argv(box["ssh"]), "id -u"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(module_desk.config.uid) != "0"


def test_printed_known_hosts_line_works_as_a_user_known_hosts_file(box: dict, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(box["ssh"]["known_hosts"] + "\n")
    ssh = box["ssh"]
    result = run_ssh(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                      "-o", f"UserKnownHostsFile={known}", "-o", "IdentitiesOnly=yes",
                      "-i", ssh["identity_file"], "-p", str(ssh["port"]), f"{ssh['user']}@{ssh['host']}", "true"])
    assert result.returncode == 0, result.stderr


# --- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["none", "password", "keyboard-interactive"])
def test_only_publickey_is_offered(box: dict, method: str) -> None:
    t = transport(box["ssh"])
    try:
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            if method == "none":
                t.auth_none("ptdesk")
            elif method == "password":
                t.auth_password("ptdesk", "hunter2")
            else:
                t.auth_interactive_dumb("ptdesk")
        assert refused.value.allowed_types == ["publickey"]
    finally:
        t.close()


def test_root_is_refused_even_with_the_owner_key(box: dict) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        login(box["ssh"], box["ssh"]["identity_file"], user="root")


def test_an_unknown_key_is_refused(box: dict, keygen: Callable[[str], Path]) -> None:
    stranger = keygen("stranger")
    with pytest.raises(paramiko.AuthenticationException):
        login(box["ssh"], stranger)
    result = run_ssh(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                      "-i", str(stranger), "-p", str(box["ssh"]["port"]), f"ptdesk@{box['ssh']['host']}", "true"])
    assert result.returncode == 255 and "Permission denied (publickey)" in result.stderr


def test_a_client_expecting_another_host_key_refuses_to_connect(box: dict, tmp_path: Path) -> None:
    impostor = keys.generate().public_line
    with pytest.raises(paramiko.BadHostKeyException):
        login(box["ssh"], box["ssh"]["identity_file"], host_key=impostor)
    known = tmp_path / "known_hosts"
    known.write_text(keys.host_known_hosts_line(box["ssh"]["host"], box["ssh"]["port"], impostor) + "\n")
    ssh = box["ssh"]
    result = run_ssh(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                      "-o", f"UserKnownHostsFile={known}", "-o", "IdentitiesOnly=yes",
                      "-i", ssh["identity_file"], "-p", str(ssh["port"]), f"ptdesk@{ssh['host']}", "true"])
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_ssh_audit_passes_the_committed_policy(box: dict) -> None:
    # The policy demands these exact algorithm lists: any weaker (or extra) algorithm fails it.
    # Installed next to the interpreter running the tests (the venv's bin/).
    exe = Path(sys.executable).parent / "ssh-audit"
    result = subprocess.run([str(exe), "-p", str(box["ssh"]["port"]), "--skip-rate-test", "-P", str(POLICY),
                             box["ssh"]["host"]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout


def test_stdio_forwarding_beyond_the_loopback_is_refused(box: dict) -> None:
    # Forwards reach the container's own loopback only (tests/e2e/test_forwarding.py has the rest).
    result = run_ssh(ssh_argv(box["ssh"], "-W", "192.0.2.1:22"))
    assert result.returncode == 255
    assert "administratively prohibited" in result.stderr


def test_remote_forwarding_is_refused(box: dict) -> None:
    result = run_ssh(ssh_argv(box["ssh"], "-o", "ExitOnForwardFailure=yes", "-N", "-R", "0:127.0.0.1:22"))
    assert result.returncode == 255
    assert "remote port forwarding failed" in result.stderr


def test_local_forwarding_beyond_the_loopback_is_refused(box: dict) -> None:
    with socket.socket() as probe:  # a free local port for the client's listener
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    proc = subprocess.Popen(ssh_argv(box["ssh"], "-o", "ExitOnForwardFailure=yes", "-N",
                                     "-L", f"127.0.0.1:{local}:192.0.2.1:22"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: listening("127.0.0.1", local) or proc.poll() is not None, timeout=30,
                   message="the ssh client's local listener")
        assert proc.poll() is None, "ssh exited before listening"
        with socket.create_connection(("127.0.0.1", local), timeout=15) as conn:
            conn.settimeout(15)
            # The server refuses the channel, so the client closes our connection without data.
            assert conn.recv(64) == b""
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # OpenSSH 9.2 at times sits out a SIGTERM with channels refused
            proc.kill()
            _, err = proc.communicate(timeout=15)
    assert "administratively prohibited" in err


# --- the container as the engine sees it --------------------------------------------------------


def test_container_is_hardened(box: dict, engine: Engine, module_desk: Ptdesk) -> None:
    data = engine.inspect(box["id"])
    host = data["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert set(host["CapAdd"]) == SSHD_CAPS and len(host["CapAdd"]) == len(SSHD_CAPS)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["PidsLimit"] == 4096
    assert host["Memory"] == 1 * GIB and host["MemorySwap"] == 1 * GIB
    assert host["NanoCpus"] == 1_000_000_000
    assert host["ShmSize"] == 256 * MIB
    assert host["NetworkMode"] not in ("host",) and host["PidMode"] == "" and host["IpcMode"] != "host"
    assert not any("docker.sock" in m.get("Source", "") for m in data["Mounts"])
    for bindings in host["PortBindings"].values():
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings)
    published = [b for bs in data["NetworkSettings"]["Ports"].values() for b in (bs or [])]
    assert published and all(b["HostIp"] == "127.0.0.1" for b in published)
    assert {int(b["HostPort"]) for b in published} == {box["ssh"]["port"]}
    labels = data["Config"]["Labels"]
    assert labels["ptdesk.managed"] == "1" and labels["ptdesk.kind"] == "ssh"
    assert labels["ptdesk.name"] == "box" and labels["ptdesk.owner"] == box["owner"]
    assert labels["ptdesk.instance"] == module_desk.instance


def test_secrets_stay_out_of_the_container_config(box: dict, engine: Engine, module_desk: Ptdesk) -> None:
    """The host private key is only inside the container; the host keeps the public half."""
    folder = module_desk.experiment_folder("box")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["known_hosts", "ssh_host_ed25519_key.pub"]
    private = engine.read_file(box["id"], "/etc/ssh/ssh_host_ed25519_key")
    assert b"PRIVATE KEY" in private
    # Inside, only root can read the host key or change who may log in (sshd's StrictModes agrees).
    rc, out = engine.exec(box["id"], ["stat", "-c", "%n %a %U", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh",
                                      "/etc/ptdesk/authorized_keys/ptdesk", "/etc/ptdesk/authorized_keys"])
    assert rc == 0 and out.decode().splitlines() == [
        "/etc/ssh/ssh_host_ed25519_key 600 root", "/etc/ssh 755 root",
        "/etc/ptdesk/authorized_keys/ptdesk 644 root", "/etc/ptdesk/authorized_keys 755 root"]
    inspected = str(engine.inspect(box["id"]))
    assert private.decode().splitlines()[1] not in inspected


def test_ls_and_logs(box: dict, module_desk: Ptdesk) -> None:
    table = module_desk.ok("ls")
    row = next(line for line in table.splitlines() if line.startswith("box "))
    assert "ssh" in row and "running" in row and box["ssh"]["command"] in row
    assert module_desk.listed(all=True)["box"] == box
    # sshd writes each login to its output; the tail is the end of the full log.
    login(box["ssh"], box["ssh"]["identity_file"])

    def whole_log() -> list[str]:
        # sshd logs the end of a session just after the client has gone: read once it is there.
        lines = module_desk.ok("logs", "box", "--tail", "all").splitlines()
        return lines if lines and "Closing connection" in lines[-1] else []

    everything = wait_until(whole_log, timeout=10, message="sshd to log the end of the login")
    assert any("Accepted publickey for ptdesk" in line for line in everything)
    tail = module_desk.ok("logs", "box", "--tail", "2").splitlines()
    assert len(tail) == 2 and tail == everything[-2:]


# --- lifecycle (own containers) -----------------------------------------------------------------


def follow_logs(cli: Ptdesk, name: str, out: Path) -> subprocess.Popen[bytes]:
    """`ptdesk logs -f NAME` as a user runs it, its output going to a file we can poll."""
    script = Path(sys.executable).parent / "ptdesk"
    handle = out.open("wb")
    proc = subprocess.Popen([str(script), "logs", "-f", name, "--tail", "5"], env=cli.env,
                            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle.close()
    wait_until(lambda: out.stat().st_size > 0, timeout=30, message="the first followed log line")
    return proc


def test_stop_start_and_remove(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    exp = cli.new("ssh", "--name", "cycle")
    access = exp["ssh"]
    identity = Path(access["identity_file"])

    follower = follow_logs(cli, "cycle", tmp_path / "follow-1.log")
    assert cli.ok("stop", "cycle").strip() == "cycle stopped."
    assert follower.wait(timeout=30) == 0  # -f ends when the container stops
    assert "cycle" not in cli.listed(all=False)
    assert cli.listed(all=True)["cycle"]["status"] == "exited"
    with pytest.raises((paramiko.SSHException, OSError, EOFError)):
        login(access, identity)

    restarted = cli.json("start", "cycle")
    again = restarted["ssh"]
    assert restarted["status"] == "running" and again["host_key_fingerprint"] == access["host_key_fingerprint"]
    published = engine.published_port(exp["id"], "22/tcp")
    # The same address as before: the ssh command, known_hosts line and configs people were given
    # keep working across a stop and start.
    assert published == ("127.0.0.1", access["port"]) and again == access
    assert login(again, identity) != "0"
    result = run_ssh([*ssh_argv(again), "true"])
    assert result.returncode == 0, result.stderr
    # A restart behind ptdesk's back (docker restart) keeps it too.
    engine.stop(exp["id"], timeout=5)
    engine.start(exp["id"])
    assert engine.published_port(exp["id"], "22/tcp") == ("127.0.0.1", access["port"])
    # Who is logged in is read live, and sshd may not be up yet right after `docker start`.
    listed = {k: v for k, v in cli.listed(all=False)["cycle"].items() if k != "logged_in"}
    assert listed == {k: v for k, v in restarted.items() if k != "logged_in"}

    # Plain rm refuses a running experiment, in one line, and changes nothing.
    lines = cli.fails("rm", "cycle")
    assert "running" in lines[0] and "--force" in lines[-1]
    assert engine.try_inspect(exp["id"]) is not None and "cycle" in cli.records()

    follower = follow_logs(cli, "cycle", tmp_path / "follow-2.log")
    assert cli.ok("rm", "--force", "cycle").strip() == "cycle removed."
    assert follower.wait(timeout=30) == 0  # -f ends when the container is removed
    cli.assert_removed(engine, exp, again["port"])
    assert cli.assert_owner_key(exp["owner"]) == identity


def test_rm_of_a_stopped_experiment_needs_no_force(cli: Ptdesk, engine: Engine) -> None:
    exp = cli.new("ssh", "--name", "stopped")
    assert not cli.port_free(exp["ssh"]["port"])
    cli.ok("stop", "stopped")
    assert cli.ok("rm", "stopped").strip() == "stopped removed."
    cli.assert_removed(engine, exp, exp["ssh"]["port"])


def test_configured_bind_address_is_used_for_every_port(cli: Ptdesk, engine: Engine) -> None:
    exp = cli.new("ssh", "--name", "lo2", extra_env={"PTDESK_BIND_ADDRESS": "127.0.0.2"})
    access = exp["ssh"]
    assert access["host"] == "127.0.0.2"
    assert access["known_hosts"].startswith(f"[127.0.0.2]:{access['port']} ")
    published = [b for bs in engine.inspect(exp["id"])["NetworkSettings"]["Ports"].values() for b in (bs or [])]
    assert published and all(b["HostIp"] == "127.0.0.2" for b in published)
    assert login(access, access["identity_file"]) != "0"
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the other loopback address
        socket.create_connection(("127.0.0.1", access["port"]), timeout=5).close()


def test_pubkey_authorises_a_persons_own_key_besides_the_owner_key(
        cli: Ptdesk, keygen: Callable[[str], Path]) -> None:
    mine = keygen("laptop")
    exp = cli.new("ssh", "--name", "bring", "--pubkey", f"{mine}.pub")
    access = exp["ssh"]
    assert login(access, mine) != "0"
    assert login(access, access["identity_file"]) != "0"
    result = run_ssh(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                      "-o", "StrictHostKeyChecking=yes",
                      "-o", f"UserKnownHostsFile={cli.experiment_folder('bring') / 'known_hosts'}",
                      "-i", str(mine), "-p", str(access["port"]), f"ptdesk@{access['host']}", "id -u"])
    assert result.returncode == 0 and result.stdout.strip() != "0", result.stderr
