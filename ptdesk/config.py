"""Settings, resolved once: defaults, then `PTDESK_HOME/config.toml`, then environment variables.

PTDESK_HOME (default: `$XDG_DATA_HOME/ptdesk`, else `~/.local/share/ptdesk`) holds config.toml, the
SQLite state database, the 0700 `keys/` folder and the default workspaces.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ptdesk.config_cull import parse_cull
from ptdesk.config_workstations import LOCAL, WorkstationEntry, check_address, parse_workstations
from ptdesk.errors import ConfigError

# The default base is a real PyTorch CUDA runtime; tests build FROM a local Debian base instead.
DEFAULT_BASE_IMAGE = "pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([bkmg]?)", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Docker reads a memory limit of 0 as "unlimited" and refuses one under 6 MiB: both are mistakes here.
# A Debian package name (policy 5.6.1), optionally pinned to a version.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
_MIN_SIZE = {"memory": 6 * 1024**2, "shm_size": 1024**2}


@dataclass(frozen=True)
class Limits:
    """Resource limits a container gets; the config holds the defaults."""

    memory: str = "16g"
    cpus: float = 4.0
    pids: int = 4096
    shm_size: str = "8g"


# `<kind>_image` in config.toml and PTDESK_<KIND>_IMAGE in the environment name a kind's image; which
# kinds exist is the core's to say (the Workstation refuses a setting for a kind it does not know).
IMAGE_KEY = re.compile(r"([a-z][a-z0-9]{0,30})_image")
IMAGE_ENV = re.compile(r"PTDESK_([A-Z][A-Z0-9]{0,30})_IMAGE")


@dataclass(frozen=True)
class Config:
    home: Path
    bind_address: str = "127.0.0.1"
    images: dict[str, str] = field(default_factory=dict)  # kind -> image tag, where not ptdesk's default
    base_image: str = DEFAULT_BASE_IMAGE
    limits: Limits = field(default_factory=Limits)
    # Default workspace root: each experiment gets <workspace_root>/<name> unless --workspace is given.
    workspace_root: Path | None = None
    # Host user whose uid/gid the container user runs as, so workspace files belong to them.
    uid: int = 1000
    gid: int = 1000
    # Separates independent ptdesk installations sharing one engine (and test runs from each other).
    instance: str = "default"
    # Seconds a launch may take to become ready before it is rolled back.
    ready_timeout: float = 90.0
    # Jupyter over TLS: "auto" (when bind_address is not loopback), "on" or "off".
    jupyter_tls: str = "auto"
    # Seconds a GPU launch waits for another launch holding the machine's GPU lock.
    gpu_lock_wait: float = 60.0
    # Seconds others' experiments on GPUs someone reserved may run on once the reservation starts
    # (they are warned at once, stopped after); negative: warn only, never stop.
    reservation_grace: float = 600.0
    ca_bundle: Path | None = None
    # What a launch gets when no GPUs are asked for, in the CLI and the dashboard's form alike.
    gpus: str = "auto"
    # How long a stopped experiment keeps its GPUs (so a quick restart gets them back); after that
    # they are free for others. A duration like 10m or 1h (ptdesk.core.base.durations reads it).
    gpu_hold_after_stop: str = "10m"
    # GPU memory used outside every ptdesk experiment (host processes, hand-started containers)
    # above which a GPU is not free for auto, any:N and the queue (a size like 1G).
    unclaimed_gpu_memory: str = "1G"
    # Jupyter/SSH idle limit for `ptdesk cull` (seconds; 0 disables automatic culling).
    idle_cull_seconds: int = 0
    # What idle means for the cull, per kind ("*": every kind), and its warning (ptdesk.config_cull).
    cull: dict[str, dict[str, str]] = field(default_factory=dict)
    # The events a new notification route gets unless `ptdesk notify add --events` names others
    # (empty: every event; ptdesk.core.notify.routes checks the names).
    notify_events: tuple[str, ...] = ()
    # Other Docker engines reached over SSH ([workstations.NAME]); "local" is always this machine's.
    workstations: dict[str, WorkstationEntry] = field(default_factory=dict)
    default_workstation: str = LOCAL
    # Which workstation these settings are for (for_workstation sets it): names its ssh aliases.
    workstation: str = LOCAL
    # The address people connect to when it is not the bind address (a remote workstation's host).
    connect_address: str | None = None
    # Debian packages the SSH image gets besides its workbench (git, tmux, rsync, ...).
    ssh_packages: tuple[str, ...] = ()
    # VS Code extensions (.vsix files) the code image gets at build time: no marketplace at run time.
    code_extensions: tuple[Path, ...] = ()
    # The team's pinned image baseline (`ptdesk images pin`): a JSON file, default PTDESK_HOME/baseline.json;
    # point it at a shared file (a team repository) so every workstation checks its builds against one pin.
    baseline: Path | None = None

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def state_path(self) -> Path:
        return self.home / "state.db"

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def connect_host(self) -> str:
        """The address people connect to: the bind address, or this host's name if bound to all."""
        if self.connect_address:
            return self.connect_address
        if ipaddress.ip_address(self.bind_address).is_unspecified:
            return _host_name()
        return self.bind_address

    @property
    def baseline_path(self) -> Path:
        return self.baseline or (self.home / "baseline.json")

    @property
    def workspaces(self) -> Path:
        return self.workspace_root or (self.home / "workspaces")


@functools.cache
def _host_name() -> str:
    """This host's name, looked up once per process (a slow resolver must not slow every listing)."""
    return socket.getfqdn()


def default_home() -> Path:
    """The XDG base directory rule for user data (what platformdirs answered on Linux, without
    importing it at every start): $XDG_DATA_HOME unless unset or blank, else ~/.local/share."""
    data = os.environ.get("XDG_DATA_HOME", "")
    return Path(data if data.strip() else os.path.expanduser("~/.local/share")) / "ptdesk"


def _default_ids() -> tuple[int, int]:
    """The invoking user's ids; under sudo/root the real user's, falling back to 1000."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        uid = int(os.environ.get("SUDO_UID", "1000"))
        gid = int(os.environ.get("SUDO_GID", str(uid)))
    return uid, gid


# The PTDESK_* environment settings (besides PTDESK_<KIND>_IMAGE); PTDESK_TEST_* belong to the test suite.
ENV_SETTINGS = ("PTDESK_HOME", "PTDESK_INSTANCE", "PTDESK_BIND_ADDRESS", "PTDESK_RESIDENT",
                "PTDESK_VSCODE_DOWNLOAD")  # the last: a mirror of update.code.visualstudio.com ({commit})


def unknown_env_settings(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """PTDESK_* names ptdesk does not read (a typo is otherwise ignored silently), each with the
    setting it most likely meant."""
    out = []
    for name in sorted(env):
        if (not name.startswith("PTDESK_") or name in ENV_SETTINGS or IMAGE_ENV.fullmatch(name)
                or name.startswith("PTDESK_TEST_")):
            continue
        import difflib  # only for a name ptdesk does not read: not imported at every start

        close = difflib.get_close_matches(name, [*ENV_SETTINGS, "PTDESK_SSH_IMAGE", "PTDESK_JUPYTER_IMAGE"], n=1)
        out.append((name, close[0] if close else None))
    return out


def load_config(env: dict[str, str] | None = None) -> Config:
    """Resolve the settings once; raise ConfigError with the bad key named."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("PTDESK_HOME") or default_home()).expanduser().absolute()
    uid, gid = _default_ids()
    config = Config(home=home, uid=uid, gid=gid)
    path = config.config_path
    if path.exists():
        import tomllib  # only where there is a config.toml

        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}.", "Fix the TOML syntax or remove the file.") from exc
        config = _apply(config, data, str(path))
    overrides = {
        "bind_address": env.get("PTDESK_BIND_ADDRESS"),
        "instance": env.get("PTDESK_INSTANCE"),
    }
    for name, value in env.items():
        if (match := IMAGE_ENV.fullmatch(name)) and match.group(1) != "BASE":
            overrides[f"{match.group(1).lower()}_image"] = value
    config = _apply(config, {k: v for k, v in overrides.items() if v}, "the environment")
    return config


def _apply(config: Config, data: dict, origin: str) -> Config:
    known = {f.name for f in fields(Config)} - {"home", "images", "workstation"}  # workstation: for_workstation's
    images = {IMAGE_KEY.fullmatch(k).group(1): str(v) for k, v in data.items()  # type: ignore[union-attr]
              if k not in known and IMAGE_KEY.fullmatch(k)}
    data = {k: v for k, v in data.items() if not (k not in known and IMAGE_KEY.fullmatch(k))}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"Unknown setting {sorted(unknown)[0]!r} in {origin}.",
            f"Known settings: {', '.join(sorted(known))}, and KIND_image for each experiment kind.",
        )
    changes: dict = {"images": {**config.images, **images}} if images else {}
    for key, value in data.items():
        if key == "limits":
            changes[key] = _limits(config.limits, value, origin)
        elif key in ("workspace_root", "ca_bundle", "baseline"):
            changes[key] = _absolute_path(key, value, origin, _PATH_EXAMPLES[key])
        elif key in ("uid", "gid", "idle_cull_seconds"):
            changes[key] = _int(key, value, origin)
        elif key == "jupyter_tls" and isinstance(value, bool):  # TOML's true/false read as on/off
            changes[key] = "on" if value else "off"
        elif key in ("ready_timeout", "gpu_lock_wait", "reservation_grace"):
            changes[key] = _number(key, value, origin)
        elif key == "workstations":
            changes[key] = {**config.workstations, **parse_workstations(value, origin)}
        elif key == "cull":
            changes[key] = parse_cull(value, origin)
        elif key == "ssh_packages":
            changes[key] = _packages(key, value, origin)
        elif key == "notify_events":
            changes[key] = _names(key, value, origin)
        elif key == "code_extensions":
            if not isinstance(value, list):
                raise ConfigError(f"code_extensions in {origin} must be a list of .vsix files.",
                                  'Write it as code_extensions = ["/srv/team/ext.vsix"].')
            changes[key] = tuple(_absolute_path(key, v, origin, _PATH_EXAMPLES[key]) for v in value)
        else:
            changes[key] = str(value)
    config = replace(config, **changes)
    _validate(config, origin)
    return config


def _limits(current: Limits, value: object, origin: str) -> Limits:
    if not isinstance(value, dict):
        raise ConfigError(f"'limits' in {origin} must be a table.", "Write it as [limits] with memory, cpus, ...")
    allowed = {f.name for f in fields(Limits)}
    for key in value:
        if key not in allowed:
            raise ConfigError(f"Unknown limit {key!r} in {origin}.", f"Known limits: {', '.join(sorted(allowed))}.")
    merged = replace(
        current,
        **{k: (_number(k, v, origin) if k == "cpus" else _int(k, v, origin) if k == "pids" else str(v))
           for k, v in value.items()},
    )
    for key in ("memory", "shm_size"):
        check_size(key, getattr(merged, key), origin)
    if not math.isfinite(merged.cpus) or merged.cpus <= 0 or merged.pids <= 0:
        raise ConfigError(f"limits in {origin}: cpus and pids must be positive numbers.")
    return merged


def check_size(name: str, value: str, origin: str | None = None) -> str:
    """Accept Docker-style sizes (512m, 16g) large enough to be a real limit; anything else is a
    ConfigError naming the setting and where it came from."""
    where = f" in {origin}" if origin else ""
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ConfigError(f"{name} {value!r}{where} is not a size.", "Use a number with b, k, m or g, like 16g.")
    size = float(match.group(1)) * _UNIT[match.group(2).lower()]
    minimum = _MIN_SIZE.get(name.replace(" ", "_"), 1)
    if size < minimum:
        raise ConfigError(f"{name} {value!r}{where} is too small to be a limit.",
                          f"Use at least {minimum // 1024**2}m (0 does not mean unlimited here).")
    return value.strip()


# What each path setting names, as the hint writes it: a file's hint must not ask for a folder.
_PATH_EXAMPLES = {
    "workspace_root": "/path/to/folder or ~/folder",
    "ca_bundle": "/path/to/ca-bundle.pem or ~/ca-bundle.pem",
    "baseline": "/srv/team/baseline.json or ~/baseline.json",
    "code_extensions": "/srv/team/vscode/ext.vsix or ~/ext.vsix",
}


def _absolute_path(key: str, value: object, origin: str, example: str) -> Path:
    path = Path(str(value)).expanduser()
    if not str(value).strip() or not path.is_absolute():
        # A relative bind source would become a Docker named volume, not a folder.
        raise ConfigError(f"{key} in {origin} must be an absolute path, not {value!r}.",
                          f"Write it as {example}.")
    return path


def _packages(key: str, value: object, origin: str) -> tuple[str, ...]:
    """A list of Debian package names (optionally name=version): they reach apt-get in the build,
    so nothing else (no options, no shell) may get through."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} in {origin} must be a list of package names.",
                          'Write it as ssh_packages = ["build-essential", "ffmpeg"].')
    for name in value:
        if not _PACKAGE.fullmatch(name):
            raise ConfigError(f"{name!r} in {key} ({origin}) is not a Debian package name.",
                              "Use names as apt-get takes them: lower-case letters, digits, + - . (name=version).")
    return tuple(value)


def _names(key: str, value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} in {origin} must be a list of names.", 'Write it as notify_events = ["oom", "cull"].')
    return tuple(value)


def _int(key: str, value: object, origin: str) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} in {origin} must be a whole number, not {value!r}.") from None


def _number(key: str, value: object, origin: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} in {origin} must be a number, not {value!r}.") from None


def _validate(config: Config, origin: str) -> None:
    try:
        ipaddress.ip_address(config.bind_address)
    except ValueError:
        raise ConfigError(
            f"bind_address {config.bind_address!r} in {origin} is not an IP address.",
            "Use 127.0.0.1 (default) or the one address collaborators reach.",
        ) from None
    if config.connect_address is not None:
        check_address(config.connect_address, "connect_address", f" in {origin}")
    if not math.isfinite(config.ready_timeout) or config.ready_timeout <= 0:
        raise ConfigError(f"ready_timeout in {origin} must be a positive number of seconds, not "
                          f"{config.ready_timeout:g}.", "The default is 90.")
    if config.default_workstation not in (LOCAL, *config.workstations):
        raise ConfigError(f"default_workstation {config.default_workstation!r} in {origin} names no workstation.",
                          "Use local or the NAME of a [workstations.NAME] table.")
    if config.jupyter_tls not in ("auto", "on", "off"):
        raise ConfigError(f"jupyter_tls in {origin} must be auto, on or off, not {config.jupyter_tls!r}.",
                          "auto (the default) uses TLS when bind_address is not loopback.")
    if not math.isfinite(config.gpu_lock_wait) or config.gpu_lock_wait < 0:
        raise ConfigError(f"gpu_lock_wait in {origin} must be zero or more seconds, not {config.gpu_lock_wait:g}.",
                          "The default is 60.")
    if config.uid < 1 or config.gid < 1:
        raise ConfigError(f"uid/gid in {origin} must be a normal user's ids (1 or more), not "
                          f"{config.uid}/{config.gid}.", "Experiments never run as root; use your own ids.")
    if not re.fullmatch(r"none|all|auto|any:[1-9]\d*|\d+(,\d+)*", config.gpus):
        raise ConfigError(f"gpus {config.gpus!r} in {origin} is not a GPU request.",
                          "Use none, all, auto, any:N, or GPU indices like 0,2.")
    # The grammar of ptdesk.core.base.durations (the config cannot import the core).
    if not re.fullmatch(r"\d+(\.\d+)?\s*[smhdw]", config.gpu_hold_after_stop.strip().lower()):
        raise ConfigError(f"gpu_hold_after_stop {config.gpu_hold_after_stop!r} in {origin} is not a duration.",
                          "Use a number and a unit s, m, h, d or w, like 10m (the default) or 0s (no hold).")
    if not re.fullmatch(r"\d+(\.\d+)?\s*[mgt](i?b)?", config.unclaimed_gpu_memory.strip().lower()):
        raise ConfigError(f"unclaimed_gpu_memory {config.unclaimed_gpu_memory!r} in {origin} is not a size.",
                          "Use a number and a unit M, G or T, like 1G (the default).")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", config.instance):
        raise ConfigError(f"instance {config.instance!r} in {origin} is not a valid name.",
                          "Use lower-case letters, digits, '.', '_' or '-'.")


def for_workstation(config: Config, entry: WorkstationEntry) -> Config:
    """The settings one remote workstation runs with: its own state, keys and experiment files under
    PTDESK_HOME/workstations/NAME (so a dead box never holds another's store, and each engine is
    reconciled against its own records), ports published on its bind address, and connection lines
    naming the address people reach it at."""
    return replace(config, home=config.home / "workstations" / entry.name, workstation=entry.name,
                   bind_address=entry.bind_address or config.bind_address,
                   connect_address=entry.connect_address,
                   workspace_root=config.workspace_root or config.home / "workstations" / entry.name / "workspaces")
