"""Docker engines over SSH with ptdesk's own pinned host keys (paramiko, as docker-py does).

docker-py's `ssh://` transport trusts ~/.ssh/known_hosts and ~/.ssh/config found through $HOME, and
offers every key in ~/.ssh and the agent. A workstation must instead be reached with exactly the key
ptdesk was told to use and the host key that `ptdesk workstations add` pinned in ptdesk's own
known_hosts (PTDESK_HOME/keys/workstations/known_hosts, 0600): PinnedSSHAdapter is docker-py's
adapter with only the paramiko client set up differently, mounted on a plain APIClient.
Every failure becomes one sentence naming the workstation: unreachable, key refused, host key
unknown or changed, engine down.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

import docker
import paramiko

# From its own module: docker.transport leaves it out when the SDK was first imported for a local
# engine (ptdesk.core.engine.sdk).
from docker.transport.sshconn import SSHHTTPAdapter

from ptdesk.config import Config, WorkstationEntry
from ptdesk.core.base import keys, private_files
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.errors import translated_errors
from ptdesk.core.host.ports import tcp_connect
from ptdesk.errors import EngineUnavailable, PtdeskError

CONNECT_TIMEOUT = 5.0  # seconds for TCP connect, SSH banner and authentication: a dead box answers fast
# Idle HTTP connections kept per workstation, each one SSH session; streams (events, logs, the GPU
# sampler) hold one each on top, all under sshd's default MaxSessions of 10.
POOL_SIZE = 4
MIN_API = "1.41"  # what docker-py 7 still speaks and Engine 20.10 (Debian 12) offers


def workstation_keys(config: Config) -> Path:
    return config.keys_dir / "workstations"


def known_hosts_path(config: Config) -> Path:
    return workstation_keys(config) / "known_hosts"


def identity_of(config: Config, entry: WorkstationEntry) -> Path:
    """The key ptdesk logs in with: the entry's own, else ptdesk's workstation key (made on first use)."""
    if entry.identity_file:
        private_files.check_private_file(entry.identity_file)
        return entry.identity_file
    private, _ = keys.load_or_create(workstation_keys(config), "ptdesk-workstations")
    return private


@dataclass(frozen=True)
class HostKey:
    key_type: str
    blob: str  # base64, as in known_hosts

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def matches(self, key: paramiko.PKey) -> bool:
        return key.get_name() == self.key_type and key.get_base64() == self.blob


def _where(entry: WorkstationEntry) -> str:
    return entry.host if entry.port == 22 else f"[{entry.host}]:{entry.port}"


def scan_host_key(entry: WorkstationEntry, timeout: float = CONNECT_TIMEOUT) -> HostKey:
    """The host key the server offers (no authentication, nothing trusted yet): what `add` shows."""
    try:
        sock = tcp_connect(entry.host, entry.port, timeout)
    except OSError as exc:
        raise unreachable(entry, exc) from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return HostKey(key.get_name(), key.get_base64())
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise EngineUnavailable(f"Workstation {entry.name}: {entry.host}:{entry.port} does not speak SSH ({exc}).",
                                "Check the engine address in [workstations.NAME].") from None
    finally:
        transport.close()


def pinned_key(config: Config, entry: WorkstationEntry) -> HostKey | None:
    found = paramiko.HostKeys(str(known_hosts_path(config))) if known_hosts_path(config).exists() else None
    keys_for = found.lookup(_where(entry)) if found else None
    if not keys_for:
        return None
    key_type = next(iter(keys_for.keys()))
    return HostKey(key_type, keys_for[key_type].get_base64())


def pin(config: Config, entry: WorkstationEntry, key: HostKey) -> None:
    """Record `key` as the workstation's host key (replacing an earlier pin for the same host:port)."""
    path = known_hosts_path(config)
    kept = [line for line in _lines(path) if line.split(" ", 1)[0] != _where(entry)]
    kept.append(f"{_where(entry)} {key.key_type} {key.blob}")
    private_files.write_secret(path, ("\n".join(kept) + "\n").encode(), 0o600)


def unpin(config: Config, entry: WorkstationEntry) -> None:
    path = known_hosts_path(config)
    if path.exists():
        kept = [line for line in _lines(path) if line.split(" ", 1)[0] != _where(entry)]
        private_files.write_secret(path, "".join(f"{line}\n" for line in kept).encode(), 0o600)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class PinnedSSHAdapter(SSHHTTPAdapter):
    """docker-py's SSH adapter with a paramiko client that trusts only ptdesk's pinned key, logs in
    with one key file (no agent, no ~/.ssh), and gives up after CONNECT_TIMEOUT."""

    def __init__(self, entry: WorkstationEntry, known_hosts: Path, identity: Path, timeout: float) -> None:
        self._entry, self._known_hosts, self._identity = entry, known_hosts, identity
        super().__init__(entry.engine, timeout=timeout, max_pool_size=POOL_SIZE)

    def get_connection(self, url: str, proxies: object = None) -> object:
        """One pool for every request. docker-py keys its SSH pools by the full URL (up to 9 pools),
        and every pooled HTTP connection is an SSH session running `docker system dial-stdio`:
        enough distinct URLs (a launch makes a dozen) exceed sshd's MaxSessions (10 by default),
        and the next request fails with `ChannelException: Connect failed`."""
        return super().get_connection(self._entry.engine, proxies)

    def _create_paramiko_client(self, base_url: str) -> None:
        self.ssh_client = paramiko.SSHClient()
        if self._known_hosts.exists():
            self.ssh_client.get_host_keys().load(str(self._known_hosts))
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.ssh_params = {
            "hostname": self._entry.host, "port": self._entry.port, "username": self._entry.user,
            "key_filename": str(self._identity), "allow_agent": False, "look_for_keys": False,
            "timeout": CONNECT_TIMEOUT, "banner_timeout": CONNECT_TIMEOUT, "auth_timeout": CONNECT_TIMEOUT,
        }

    def _connect(self) -> None:
        """docker-py's connect (at start and after a lost connection), over a connection of ptdesk's
        own: with Nagle's algorithm off, an engine request's few small SSH messages are not held back
        (ptdesk.core.host.ports.tcp_connect)."""
        sock = tcp_connect(self._entry.host, self._entry.port, CONNECT_TIMEOUT)
        try:
            self.ssh_client.connect(**self.ssh_params, sock=sock)
        except BaseException:
            sock.close()
            raise


def connect(config: Config, entry: WorkstationEntry, timeout: float = 60.0) -> Engine:
    """An Engine on the workstation's Docker, through SSH with the pinned host key; raises one clear
    EngineUnavailable naming the workstation."""
    identity = identity_of(config, entry)
    try:
        adapter = PinnedSSHAdapter(entry, known_hosts_path(config), identity, timeout)
    except paramiko.BadHostKeyException:
        raise EngineUnavailable(
            f"Workstation {entry.name}: its host key changed since it was pinned (refused: this may be "
            "someone in the middle).",
            f"If the machine was really reinstalled: ptdesk workstations add {entry.name} {entry.engine} "
            "(shows the new fingerprint to check).") from None
    except paramiko.AuthenticationException:
        raise EngineUnavailable(f"Workstation {entry.name}: {entry.user}@{entry.host} refused ptdesk's SSH key.",
                                f"Add {identity}.pub to {entry.user}'s ~/.ssh/authorized_keys there.") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise EngineUnavailable(f"Workstation {entry.name}: its host key is not pinned yet.",
                                    f"Run: ptdesk workstations add {entry.name} {entry.engine}") from None
        raise EngineUnavailable(f"Workstation {entry.name}: SSH failed ({exc}).",
                                "Check it with: ptdesk workstations test " + entry.name) from None
    except (OSError, EOFError) as exc:
        raise unreachable(entry, exc) from None
    return Engine(_client_on(adapter, entry, timeout), where=entry.engine)


def _client_on(adapter: PinnedSSHAdapter, entry: WorkstationEntry, timeout: float) -> docker.DockerClient:
    """A DockerClient whose requests go through `adapter`. docker-py builds its own SSH adapter inside
    APIClient.__init__ (connecting with ~/.ssh); so the client is made for a placeholder address with a
    fixed version (no request is sent) and then given the pinned adapter, as __init__ does for ssh://."""
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version=MIN_API, timeout=int(timeout))
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    try:
        with translated_errors(f"Workstation {entry.name}: connecting to its Docker engine"):
            server = api.version(api_version=False).get("ApiVersion", MIN_API)
    except PtdeskError:
        adapter.close()
        raise EngineUnavailable(f"Workstation {entry.name}: SSH works but its Docker engine does not answer.",
                                f"Start Docker on {entry.host} (the login must reach it: docker ps there).") from None
    # Speak the older of the server's and docker-py's own versions (what version="auto" would pick).
    api._version = server if docker.utils.version_lt(server, docker.constants.DEFAULT_DOCKER_API_VERSION) \
        else docker.constants.DEFAULT_DOCKER_API_VERSION
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def unreachable(entry: WorkstationEntry, exc: BaseException) -> EngineUnavailable:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        exc = next(iter(exc.errors.values()))  # paramiko wraps the socket's own reason: say that one
    why = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else (exc.strerror or str(exc)) \
        if isinstance(exc, OSError) else str(exc) or type(exc).__name__
    return EngineUnavailable(f"Workstation {entry.name}: {entry.host}:{entry.port} is unreachable ({why}).",
                             "Check that it is up and on the network; the other workstations work as usual.")
