"""A second workstation on this machine: its own dockerd (socket, data root, exec root, pidfile,
bridge) behind a real OpenSSH server on a loopback port, reached by ptdesk over ssh://.

The sshd has its own config, host key and authorized_keys; the test user's login is aimed at the
second engine with sshd's `SetEnv DOCKER_HOST=...`, and the docker CLI on PATH answers
`docker system dial-stdio` there, exactly as on a real remote. Every key is made here. stop() removes
everything it made: processes, bridge, user, folders.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ptdesk.core.base import keys, private_files
from tests.support.helpers import BASE_IMAGE, JUPYTER_IMAGE, SSH_IMAGE

IMAGES = (SSH_IMAGE, JUPYTER_IMAGE, BASE_IMAGE)


def _run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class RemoteBox:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ptd-rbox-", dir="/tmp")))
    tag: str = field(default_factory=lambda: f"{random.randrange(16**5):05x}")
    port: int = field(default_factory=_free_port)
    dockerd: subprocess.Popen | None = None
    sshd: subprocess.Popen | None = None
    # The box's time zone (dockerd's TZ, e.g. "Asia/Kolkata"): a workstation in another zone than
    # the laptop's. None: this machine's.
    tz: str | None = None

    @property
    def user(self) -> str:
        return f"ptdrb{self.tag}"

    @property
    def bridge(self) -> str:
        return f"ptdrb{self.tag}"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def engine_url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @property
    def client_key(self) -> Path:
        return self.root / "client" / "id_ed25519"

    @property
    def host_key(self) -> Path:
        return self.root / "sshd" / "ssh_host_ed25519_key"

    # --- start -------------------------------------------------------------------------------
    def start(self) -> RemoteBox:
        os.chmod(self.root, 0o711)  # the test user reaches its home below; nothing else is readable
        try:
            self._bridge_up()
            self._user()
            self.start_engine()
            self.load_images(*IMAGES)
            self._override_images()
            self._keys()
            self._start_sshd()
        except BaseException:
            self.stop()
            raise
        return self

    def _bridge_up(self) -> None:
        used = _run("ip", "-4", "-o", "addr").stdout
        subnet = next(n for n in random.sample(range(100, 250), 150) if f"172.30.{n}." not in used)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"172.30.{subnet}.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _user(self) -> None:
        home = self.root / "home"
        _run("useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--user-group", self.user)
        _run("usermod", "-p", "*", self.user)  # UsePAM no: a locked ('!') account refuses even keys
        home.mkdir(mode=0o700)
        shutil.chown(home, self.user, self.user)

    def start_engine(self) -> None:
        """Start (or start again) the second dockerd; returns once it answers."""
        pidfile = self.root / "docker.pid"
        _wait(lambda: not pidfile.exists(), 30, "the old dockerd's pid file to go")
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - the process keeps it
        self.dockerd = subprocess.Popen(
            ["dockerd", "--host", self.docker_host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(pidfile), "--bridge", self.bridge,
             "--iptables=false", "--ip-masq=false", "--group", self.user],
            # No --default-address-pool here: a dockerd started again on its old data root with
            # that flag deletes the interface named docker0 (the machine's own engine's bridge) as
            # it clears its stale default network. Its networks are pruned when it stops instead.
            stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "TZ": self.tz} if self.tz else None)
        log.close()
        _wait(self.engine_answers, 60, "the second dockerd")

    def engine_answers(self) -> bool:
        return subprocess.run(["docker", "-H", self.docker_host, "version"], capture_output=True).returncode == 0

    def kill_engine(self) -> None:
        """The engine goes away (as when it crashes or is stopped); sshd stays up."""
        if self.dockerd and self.dockerd.poll() is None:
            self.dockerd.send_signal(signal.SIGTERM)
            self.dockerd.wait(60)
        _wait(lambda: not (self.root / "docker.pid").exists(), 30, "dockerd's pid file to go")

    def load_images(self, *images: str) -> None:
        """Copy images from this machine's engine (the second engine has no registry either)."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        try:
            _run("docker", "-H", self.docker_host, "load", "-q", stdin=save.stdout)
        finally:
            save.stdout.close()  # type: ignore[union-attr]
            save.wait()

    def _override_images(self) -> None:
        """PTDESK_TEST_REMOTE_IMAGES="ptdesk-test/ssh:latest=ptdesk-test/ssh:mine,...": give the remote a
        newer build under the tag ptdesk launches, without retagging anything on this machine's
        engine (a shared box where :latest is older than the Dockerfiles; CI rebuilds :latest)."""
        for pair in filter(None, os.environ.get("PTDESK_TEST_REMOTE_IMAGES", "").split(",")):
            target, source = pair.split("=", 1)
            self.load_images(source)
            _run("docker", "-H", self.docker_host, "tag", source, target)

    def _keys(self) -> None:
        client = keys.generate("ptdesk-test-client")
        keys.write_keypair(self.client_key.parent, client)
        private_files.ensure_private_dir(self.host_key.parent)
        self.new_host_key()
        (self.root / "authorized_keys").write_text(client.public_line + "\n")
        os.chmod(self.root / "authorized_keys", 0o644)

    def new_host_key(self) -> None:
        private_files.write_secret(self.host_key, keys.generate("ptdesk-test-host").private_pem, 0o600)

    def _start_sshd(self) -> None:
        config = self.root / "sshd" / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd' / 'sshd.pid'}", f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "PermitRootLogin no",
            f"AllowUsers {self.user}", f"SetEnv DOCKER_HOST={self.docker_host}",
            # What a workstation's sshd allows a person (their laptop's `ssh -L` to a port on its loopback).
            "AllowTcpForwarding local", "PermitOpen 127.0.0.1:*",
            "X11Forwarding no", "LogLevel VERBOSE",
            # The files are root's and 0644/0600, but they live under /tmp (world-writable, sticky),
            # which StrictModes refuses for the whole path; a real workstation keeps them in ~/.ssh.
            "StrictModes no", "",
        ]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - the process keeps it
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            return False

        _wait(listening, 30, "sshd to listen")

    def restart_sshd(self) -> None:
        """sshd again (e.g. with a new host key), same port."""
        if self.sshd:
            self.sshd.terminate()
            self.sshd.wait(30)
        self._start_sshd()

    # --- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        for proc in (self.sshd,):
            if proc and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
        if self.dockerd and self.dockerd.poll() is None:
            with contextlib.suppress(Exception):
                containers = _run("docker", "-H", self.docker_host, "ps", "-aq").stdout.split()
                if containers:
                    subprocess.run(["docker", "-H", self.docker_host, "rm", "-f", *containers], capture_output=True)
                # Its networks' bridges outlive dockerd: remove them while it can.
                subprocess.run(["docker", "-H", self.docker_host, "network", "prune", "-f"], capture_output=True)
            with contextlib.suppress(Exception):
                self.kill_engine()
        if self.dockerd and self.dockerd.poll() is None:
            self.dockerd.kill()
            self.dockerd.wait(30)
        # Whatever dockerd left mounted under its roots goes before the folder does.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        subprocess.run(["userdel", self.user], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
