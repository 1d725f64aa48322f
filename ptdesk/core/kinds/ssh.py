"""The SSH kind: a hardened sshd whose host key ptdesk makes and pins, logins by ptdesk-made keys.

The authorized_keys file itself (rendering, atomic install) is ptdesk.core.access.authorized_keys: the
collaborator code changes it too. What is here is what makes an SSH experiment an SSH experiment:
its plan, its readiness proof (a real key login with the host key pinned), how to connect, how
idle it is (processes of the container user) and what adoption reads back.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.access import ssh_config, ssh_include, sshcheck
from ptdesk.core.access.authorized_keys import (
    AUTHORIZED_KEYS_DIR,
    CONTAINER_USER,
    GrantedKey,
    collaborator_of,
    expiry_of,
    owner_key,
    read_accounts,
    read_authorized_keys,
    render_authorized_keys,
)
from ptdesk.core.access.sshcheck import wait_for_login
from ptdesk.core.base import keys
from ptdesk.core.base.models import LABEL_OWNER, Access, LaunchSpec
from ptdesk.core.base.times import parse_time
from ptdesk.core.engine.client import NOBODY
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.core.vscode.layout import SSHRC
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

# sshd as root needs exactly these for privilege separation and interactive (pty) logins; KILL
# lets sshd's root monitor end a closed session's child (another uid's process). ptdesk itself ends
# a revoked (removed, rotated-away, expired) person's processes as that person's uid (setpriv, with
# SETUID/SETGID), not with KILL. None of it reaches outside the container's own PID namespace.
SSHD_CAPS = ("SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "AUDIT_WRITE", "KILL")
HOST_KEY_FILE = "ssh_host_ed25519_key.pub"
HOST_KEY_IN_CONTAINER = "/etc/ssh/ssh_host_ed25519_key.pub"
KNOWN_HOSTS_FILE = "known_hosts"
SSH_ACTIVE_KEY = "cull.ssh_active."  # + experiment name -> last time its user had processes


# A login starts where the work is; the home keeps the dotfiles. Placed at launch (as root, read-only
# to everyone), so it holds in every image ptdesk runs, whatever its build.
START_IN_WORKSPACE = b"""# Written by ptdesk: a login starts in /workspace, where the work is.
if [ "$PWD" = "$HOME" ] && [ -d /workspace ]; then cd /workspace || true; fi
"""


class SshKind(Kind):
    name = "ssh"
    title = "SSH"
    summary = "A hardened SSH server: key-only login, pinned host key, non-root user."
    container_port = "22/tcp"
    sealed_paths = ("/etc/ssh/ssh_host_ed25519_key",)
    accepts_pubkeys = True
    grants_logins = True
    mounts_vscode_cache = True

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        _, owner_public = owner_key(config, spec.owner)
        host = keys.generate(comment=f"{spec.name}@ptdesk")
        # Only the public half stays on the host: it is what clients pin.
        experiment_files.write(config, spec.name, HOST_KEY_FILE, host.public_line + "\n", 0o644)
        files = (
            ("/etc/ssh", (FileSpec("ssh_host_ed25519_key", host.private_pem, mode=0o600),
                          FileSpec("ssh_host_ed25519_key.pub", (host.public_line + "\n").encode(), mode=0o644),
                          # links the workstation's cached VS Code Server builds at each login (ptdesk vscode)
                          FileSpec("sshrc", SSHRC, mode=0o644))),
            (AUTHORIZED_KEYS_DIR, (FileSpec(CONTAINER_USER,
                                            render_authorized_keys(owner_public, spec.extra_keys).encode(),
                                            mode=0o644),)),
            ("/etc/profile.d", (FileSpec("ptdesk-workspace.sh", START_IN_WORKSPACE, mode=0o644),)),
        )
        return Plan(
            container_port=self.container_port,
            cap_add=SSHD_CAPS,
            environment={"PTDESK_UID": str(config.uid), "PTDESK_GID": str(config.gid)},
            files=files,
            host_public_key=host.public_line,
        )

    def warm_up(self) -> None:
        sshcheck.load()  # paramiko, for the login proof

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        key_file, _ = owner_key(config, record.owner)
        assert record.host_public_key
        wait_for_login(host, port, CONTAINER_USER, key_file, record.host_public_key, timeout, is_alive)

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        if not record.port or not record.host_public_key:
            return None
        # The known_hosts file the command names is written by after_start.
        key_file = experiment_files.user_key_dir(config, record.owner) / "id_ed25519"
        known = keys.host_known_hosts_line(host, record.port, record.host_public_key)
        known_file = experiment_files.folder(config, record.name) / KNOWN_HOSTS_FILE
        command = " ".join([
            "ssh", "-i", shlex.quote(str(key_file)), "-p", str(record.port),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", shlex.quote(f"UserKnownHostsFile={known_file}"), f"{CONTAINER_USER}@{host}",
        ])
        if ssh_include.installed(config):  # ~/.ssh/config includes ptdesk's: the short form works
            command = f"ssh {ssh_config.alias(config, record.name)}"
        fingerprint = keys.fingerprint(record.host_public_key)
        rows = (("Connect", command), ("Host", f"{host}:{record.port} as {CONTAINER_USER}"),
                ("Identity", str(key_file)), ("Host key", fingerprint), ("known_hosts", known))
        return Access(connect=command, rows=rows, fields={
            "host": host, "port": record.port, "user": CONTAINER_USER, "identity_file": str(key_file),
            "known_hosts": known, "host_key_fingerprint": fingerprint, "command": command})

    def idle(self, site: Site, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        """SSH has no activity clock of its own, so ptdesk keeps one. A process of its people
        without a terminal (a job left running, a command, a forward) is activity now; one on a
        terminal counts from that terminal's last input, as `w` shows it, so a shell left open
        over lunch is idle (and warned) while a run in tmux is not. Each check notes the time."""
        people = {site.config.uid} | {c.uid for g in site.store.grants(experiment=record.name)
                                    if (c := site.store.collaborator(g.collaborator)) and c.uid is not None}
        # As nobody: reading /proc and stat-ing terminals needs no account, and nothing of any person's runs with it.
        rc, out = site.engine.exec(container_id, ["sh", "-c", _ACTIVITY], user=NOBODY)
        if rc != 0:
            return None, f"ps failed ({out.decode(errors='replace').strip()})"
        running, on_terminals = _activity(out.decode(errors="replace"), people)
        key = SSH_ACTIVE_KEY + record.name
        if running:
            site.store.set_meta(key, repr(now))
            return 0.0, f"{running} process(es) of its people"
        seen = site.store.get_meta(key)
        started = parse_time((site.engine.inspect(container_id).get("State") or {}).get("StartedAt")) or record.created
        last = max(started, float(seen) if seen else 0.0, on_terminals or 0.0)
        if on_terminals is not None:
            return max(0.0, now - last), "no input on its people's terminals"
        return max(0.0, now - last), "no process of its people"

    def read_back(self, site: Site, container_id: str, labels: Mapping[str, str]) -> Recovered:
        try:
            host_key = keys.parse_public_key(site.engine.read_file(container_id, HOST_KEY_IN_CONTAINER).decode())
        except UnicodeDecodeError:
            raise PtdeskError("The host key in the container is not text.") from None
        return _recover_keys(site, container_id, labels[LABEL_OWNER], host_key)

    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        write_known_hosts(config, record)
        ssh_config.refresh_quietly(config, also=record)  # `ssh NAME` follows the port and host key


def write_known_hosts(config: Config, record: ExperimentRecord) -> None:
    """Write experiments/<name>/known_hosts, the pinned host key at the recorded port, which the
    connect command names; at launch, start (the port may change) and adoption."""
    if not record.port or not record.host_public_key:
        return
    known = keys.host_known_hosts_line(config.connect_host, record.port, record.host_public_key) + "\n"
    if experiment_files.read(config, record.name, KNOWN_HOSTS_FILE) != known:
        experiment_files.write(config, record.name, KNOWN_HOSTS_FILE, known, 0o644)


def _recover_keys(site: Site, container_id: str, owner: str, host_key: str) -> Recovered:
    """Sort the lines of the container's authorized_keys: collaborator keys (by the marker ptdesk
    writes on them) come back as collaborators; unmarked lines without an expiry are the keys the
    owner brought (--pubkey), kept so that re-rendering keeps them; the owner's own ptdesk key is
    rendered anyway. Anything else (an unmarked line with an expiry: a grant written before
    markers existed) is dropped and said so: never a permanent key nobody can see or revoke."""
    owner_public = experiment_files.user_key_dir(site.config, owner) / "id_ed25519.pub"
    skip: set[str] = set()
    with contextlib.suppress(OSError, PtdeskError):
        skip.add(keys.fingerprint(owner_public.read_text()))
    try:
        # The owner's file, then each collaborator account's own (older containers kept all in one).
        engine = site.engine
        accounts = tuple(read_accounts(engine, container_id))
        text = read_authorized_keys(engine, container_id) + "".join(
            read_authorized_keys(engine, container_id, name) for name, _ in accounts)
    except UnicodeDecodeError:
        raise PtdeskError("The authorized_keys file in the container is not text.") from None
    brought: list[str] = []
    granted: list[GrantedKey] = []
    dropped: list[str] = []
    for line in text.splitlines():
        options, _, key = line.strip().partition(" ")
        try:
            public = keys.parse_public_key(key)
        except PtdeskError:
            continue  # not a key line at all
        if keys.fingerprint(public) in skip:
            continue
        if (person := collaborator_of(line)) is not None:
            granted.append(GrantedKey(person, " ".join(public.split()[:2]), expiry_of(options)))
        elif "expiry-time=" in options:
            dropped.append(f"{keys.fingerprint(public)} (an expiring key without ptdesk's collaborator marker)")
        else:
            brought.append(public)
    return Recovered(host_public_key=host_key, extra_keys=tuple(brought), collaborators=tuple(granted),
                     dropped=tuple(dropped), accounts=accounts)


SSH = SshKind()


# Each terminal's last input time (atime, what `w` reads), then the processes (uid, terminal, command
# line). Terminals first: the first "--" line ends their part, and only a command line (anyone's
# text) could hold another one.
_ACTIVITY = ('for t in /dev/pts/[0-9]*; do stat -c "%X %n" "$t"; done 2>/dev/null; echo --; '
             'ps -e -o uid=,tty=,args=')


def _activity(text: str, people: set[int]) -> tuple[int, float | None]:
    """(processes of `people` running without a terminal, the latest input on their terminals)."""
    ttys, _, listing = text.partition("--\n")
    inputs = {}
    for line in ttys.split("\n"):
        atime, _, path = line.strip().partition(" ")
        if atime.isdigit():
            inputs[path.removeprefix("/dev/")] = float(atime)
    running, latest = 0, None
    for line in listing.split("\n"):
        fields = line.split(None, 2)
        if len(fields) < 3 or not fields[0].isdigit() or int(fields[0]) not in people:
            continue
        if fields[1] == "?" and "@pts/" not in fields[2]:  # a terminal login's sshd counts by its terminal
            running += 1
        elif fields[1] in inputs:
            latest = max(latest or 0.0, inputs[fields[1]])
    return running, latest
