"""The `[workstations.NAME]` tables of config.toml: other Docker engines, reached over SSH.

Only the shape is checked here (config is independent of the core); connecting, host keys and the
per-workstation state live in ptdesk.core.engine.remote and ptdesk.core.fleet.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ptdesk.errors import ConfigError

LOCAL = "local"  # the name of this machine's own engine among the workstations
AUTO = "auto"  # `--on auto`: the workstation with the most free GPU capacity
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_KEYS = {"engine", "address", "bind_address", "identity_file"}
# A DNS name (letters, digits, '-', dots between labels): all an address ever needs, and nothing
# that could end a line or start a new directive in an ssh_config (ProxyCommand...) or a URL.
_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}", re.IGNORECASE)


@dataclass(frozen=True)
class WorkstationEntry:
    """One `[workstations.NAME]` table: a Docker engine reached over `ssh://user@host[:port]`."""

    name: str
    engine: str
    address: str | None = None  # what people connect to, when it is not the SSH host
    bind_address: str | None = None  # where its experiments' ports are published (default: bind_address)
    identity_file: Path | None = None  # the SSH key ptdesk logs in with (default: keys/workstations/id_ed25519)

    @property
    def user(self) -> str:
        return urlsplit(self.engine).username or ""

    @property
    def host(self) -> str:
        return urlsplit(self.engine).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.engine).port or 22

    @property
    def connect_address(self) -> str:
        return self.address or self.host


def check_name(name: str) -> str:
    if name in (LOCAL, AUTO) or not NAME.fullmatch(name):
        raise ConfigError(f"{name!r} cannot name a workstation.",
                          "Use lower-case letters, digits, '-' or '_' (up to 32); local and auto are taken.")
    return name


def check_address(value: str, setting: str, where: str = "") -> str:
    """A host name or an IP address, nothing else: it is written into ssh configs and connect lines."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(value):
        raise ConfigError(f"{setting} {value!r}{where} is not a host name or IP address.",
                          "Write a name like gpu2.example.org or an address like 10.0.0.5 (no spaces, "
                          "newlines or other characters).")
    return value


def check_ip(value: str, setting: str, where: str = "") -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{setting} {value!r}{where} is not an IP address.",
                          "Use 127.0.0.1 or the one address collaborators reach.") from None
    return value


def check_engine(url: str, where: str = "") -> str:
    """Accept ssh://user@host[:port] only: ptdesk reaches other engines the way Docker does."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (parts is None or parts.scheme != "ssh" or not parts.username or not parts.hostname or parts.password
            or parts.path not in ("", "/") or parts.query or parts.fragment
            or (port is not None and not 0 < port < 65536) or not _USER.fullmatch(parts.username)
            or not _host_ok(parts.hostname) or not url.isprintable()):
        raise ConfigError(f"engine {url!r}{where} is not an ssh://user@host[:port] address.",
                          "Write it as ssh://you@gpu2.example.org (a Docker engine reached over SSH).")
    return url.rstrip("/")


def _host_ok(host: str) -> bool:
    try:
        check_address(host, "host")
    except ConfigError:
        return False
    return True


def check_entry(entry: WorkstationEntry, where: str = "") -> WorkstationEntry:
    """Every value of one workstation that ends up in an ssh config, a URL or a connect line."""
    check_engine(entry.engine, where)
    if entry.address is not None:
        check_address(entry.address, "address", where)
    if entry.bind_address is not None:
        check_ip(entry.bind_address, "bind_address", where)
    return entry


def parse_workstations(value: object, origin: str) -> dict[str, WorkstationEntry]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f"'workstations' in {origin} must be tables.",
                          'Write each as [workstations.NAME] with engine = "ssh://user@host".')
    found = {}
    for name, table in value.items():
        check_name(name)
        where = f" in [workstations.{name}] of {origin}"
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"Unknown setting {sorted(unknown)[0]!r}{where}.", f"Known: {', '.join(sorted(_KEYS))}.")
        if "engine" not in table:
            raise ConfigError(f"engine is missing{where}.", 'Add engine = "ssh://user@host".')
        identity = table.get("identity_file")
        if identity is not None and not Path(str(identity)).expanduser().is_absolute():
            raise ConfigError(f"identity_file{where} must be an absolute path.", "Write it as ~/.ssh/KEY or /path/KEY.")
        found[name] = check_entry(WorkstationEntry(
            name=name, engine=check_engine(str(table["engine"]), where),
            address=str(table["address"]) if table.get("address") else None,
            bind_address=str(table["bind_address"]) if table.get("bind_address") else None,
            identity_file=Path(str(identity)).expanduser() if identity else None), where)
    return found
