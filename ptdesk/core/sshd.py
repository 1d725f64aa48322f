"""The SSH kind: a hardened sshd whose host key ptdesk makes and pins, logins by ptdesk-made keys.

authorized_keys lives at /etc/ptdesk/authorized_keys/<user>, root-owned, so only ptdesk changes it.
sshd re-reads it at every login, so replacing the file (write aside, rename over) grants or revokes
a key for new logins at once, with no restart and no moment where the file is half written.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core import experiment_files, keys, ssh_include
from ptdesk.core.engine import Engine, FileSpec
from ptdesk.core.kinds import Plan
from ptdesk.core.models import LaunchSpec, SshAccess
from ptdesk.core.sshcheck import wait_for_login
from ptdesk.core.state import ExperimentRecord
from ptdesk.errors import PtdeskError

CONTAINER_USER = "ptdesk"
AUTHORIZED_KEYS_DIR = "/etc/ptdesk/authorized_keys"
AUTHORIZED_KEYS_PATH = f"{AUTHORIZED_KEYS_DIR}/{CONTAINER_USER}"
# sshd as root needs exactly these for privilege separation and interactive (pty) logins.
SSHD_CAPS = ("SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "AUDIT_WRITE")
HOST_KEY_FILE = "ssh_host_ed25519_key.pub"
KNOWN_HOSTS_FILE = "known_hosts"


def owner_key(config: Config, owner: str) -> tuple[Path, str]:
    """The owner's personal key pair, made on first use; it outlives every container."""
    return keys.load_or_create(experiment_files.user_key_dir(config, owner), comment=f"{owner}@ptdesk")


def sshd_expiry(expires: float | None) -> str | None:
    """sshd's expiry-time form, in UTC (the Z suffix) so the container's time zone cannot shift it,
    to the second (cut to the minute, a 15 s expiry would already be past)."""
    return None if expires is None else time.strftime("%Y%m%d%H%M%SZ", time.gmtime(expires))


def render_authorized_keys(owner_key: str, extra_keys: Iterable[str] = (),
                           granted: Iterable[tuple[str, float | None]] = ()) -> str:
    """THE authorized_keys text of an SSH experiment, at launch and after every grant change.

    The owner's key line first, then the keys the owner brought, then each granted collaborator
    key line with its expiry time (None: no expiry), which sshd itself enforces.
    """
    lines = [keys.authorized_keys_line(line) for line in (owner_key, *extra_keys)]
    lines += [keys.authorized_keys_line(line, expiry=sshd_expiry(expires)) for line, expires in granted]
    return "".join(line + "\n" for line in lines)


def install_authorized_keys(engine: Engine, container: str, text: str, running: bool) -> None:
    """Replace the container's authorized_keys atomically (rename over), running or stopped.

    put_archive extracts in place, which could let a login read a half-written file; so in a
    running container the new file is placed aside and renamed over the old one.
    """
    if not running:
        engine.put_files(container, AUTHORIZED_KEYS_DIR,
                         [FileSpec(CONTAINER_USER, text.encode(), mode=0o644)])
        return
    staged = f".{CONTAINER_USER}.new"
    engine.put_files(container, AUTHORIZED_KEYS_DIR, [FileSpec(staged, text.encode(), mode=0o644)])
    rc, out = engine.exec(container, ["mv", "-f", f"{AUTHORIZED_KEYS_DIR}/{staged}", AUTHORIZED_KEYS_PATH])
    if rc != 0:
        raise PtdeskError(f"Could not install the new authorized_keys in {container[:12]}: "
                          f"{out.decode(errors='replace').strip()}")


def read_authorized_keys(engine: Engine, container: str) -> str:
    return engine.read_file(container, AUTHORIZED_KEYS_PATH).decode()


@dataclass(frozen=True)
class SshKind:
    name: str = "ssh"
    container_port: str = "22/tcp"

    def image(self, config: Config) -> str:
        return config.ssh_image

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        _, owner_public = owner_key(config, spec.owner)
        host = keys.generate(comment=f"{spec.name}@ptdesk")
        # Only the public half stays on the host: it is what clients pin.
        experiment_files.write(config, spec.name, HOST_KEY_FILE, host.public_line + "\n", 0o644)
        files = (
            ("/etc/ssh", (FileSpec("ssh_host_ed25519_key", host.private_pem, mode=0o600),
                          FileSpec("ssh_host_ed25519_key.pub", (host.public_line + "\n").encode(), mode=0o644))),
            (AUTHORIZED_KEYS_DIR, (FileSpec(CONTAINER_USER,
                                            render_authorized_keys(owner_public, spec.extra_keys).encode(),
                                            mode=0o644),)),
        )
        return Plan(
            container_port=self.container_port,
            cap_add=SSHD_CAPS,
            environment={"PTDESK_UID": str(config.uid), "PTDESK_GID": str(config.gid)},
            files=files,
            host_public_key=host.public_line,
        )

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        key_file, _ = owner_key(config, record.owner)
        assert record.host_public_key
        wait_for_login(host, port, CONTAINER_USER, key_file, record.host_public_key, timeout, is_alive)

    def access(self, config: Config, record: ExperimentRecord, host: str) -> SshAccess | None:
        if not record.port or not record.host_public_key:
            return None
        # Pure: a listing runs often and beside `ptdesk rm`, so it must never (re)create files;
        # the known_hosts file the command names is written by write_known_hosts.
        key_file = experiment_files.user_key_dir(config, record.owner) / "id_ed25519"
        known = keys.host_known_hosts_line(host, record.port, record.host_public_key)
        known_file = experiment_files.folder(config, record.name) / KNOWN_HOSTS_FILE
        command = " ".join([
            "ssh", "-i", shlex.quote(str(key_file)), "-p", str(record.port),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", shlex.quote(f"UserKnownHostsFile={known_file}"), f"{CONTAINER_USER}@{host}",
        ])
        if ssh_include.installed(config):  # ~/.ssh/config includes ptdesk's: the short form works
            command = f"ssh {record.name}"
        return SshAccess(host=host, port=record.port, user=CONTAINER_USER, identity_file=str(key_file),
                         known_hosts=known, host_key_fingerprint=keys.fingerprint(record.host_public_key),
                         command=command)


def write_known_hosts(config: Config, record: ExperimentRecord) -> None:
    """Write experiments/<name>/known_hosts, the pinned host key at the recorded port, which the
    connect command names; at launch, start (the port may change) and adoption."""
    if not record.port or not record.host_public_key:
        return
    known = keys.host_known_hosts_line(config.connect_host, record.port, record.host_public_key) + "\n"
    if experiment_files.read(config, record.name, KNOWN_HOSTS_FILE) != known:
        experiment_files.write(config, record.name, KNOWN_HOSTS_FILE, known, 0o644)


SSH = SshKind()
