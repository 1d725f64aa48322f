"""The one line ptdesk may add to a person's ~/.ssh/config: `Include <ptdesk's ssh config>`.

Only `ptdesk ssh-config --install` (or the dashboard, after asking) adds it, at the very top, and
changes nothing else in the file. At the top, because OpenSSH reads an `Include` that comes after
a `Host` or `Match` line as part of that block: it would apply only to hosts matching it. And
OpenSSH keeps the first value it reads for each option, so ptdesk's blocks, read first, are the
ones that count for ptdesk's experiment names.

~/.ssh is found through $HOME (Path.home()), like every other path Python uses; OpenSSH itself
reads the home of the passwd entry, which is the same for a person at their own terminal.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.access import ssh_config
from ptdesk.core.base import private_files
from ptdesk.core.store.state import read_experiments
from ptdesk.errors import InvalidInput, PtdeskError

_BLOCK = re.compile(r"^\s*(host|match)(\s|=)", re.IGNORECASE)
_GLOB = set("*?[]")


@dataclass(frozen=True)
class SshConfigState:
    """What `ptdesk ssh-config` reports: ptdesk's config, its hosts, and the person's Include."""

    path: Path
    text: str
    hosts: tuple[str, ...]
    include: str
    user_config: Path
    installed: bool
    added: bool = False
    removed: bool = False
    stopped: tuple[str, ...] = ()  # hosts whose experiment is stopped: nothing answers until it starts

    def to_json(self) -> dict:
        return {"path": str(self.path), "hosts": list(self.hosts), "include": self.include,
                "user_config": str(self.user_config), "installed": self.installed, "added": self.added,
                "removed": self.removed, "stopped": list(self.stopped)}


def state(config: Config, add_include: bool = False, remove_include: bool = False) -> SshConfigState:
    """Rewrite ptdesk's ssh config; with `add_include` / `remove_include`, add or remove the
    Include line (only when asked)."""
    path = ssh_config.refresh(config)
    added = install(config) if add_include else False
    removed = uninstall(config) if remove_include else False
    records = ssh_config.reachable(read_experiments(config.state_path))
    hosts = tuple(ssh_config.alias(config, r.name) for r in records)
    stopped = tuple(ssh_config.alias(config, r.name) for r in records if r.status != "running")
    return SshConfigState(path=path, text=path.read_text(), hosts=hosts, include=include_line(config),
                          user_config=user_config_path(), installed=installed(config), added=added,
                          removed=removed, stopped=stopped)


def user_config_path() -> Path:
    return Path.home() / ".ssh" / "config"


def include_line(config: Config) -> str:
    """`Include PATH`, quoted when PATH holds spaces; a PATH ssh would read as a glob is refused."""
    path = str(ssh_config.config_path(config))
    if _GLOB & set(path):
        raise InvalidInput(f"ptdesk's ssh config path {path} holds glob characters, which Include would expand.",
                           "Set PTDESK_HOME to a folder without * ? [ ] in its path.")
    return f"Include {ssh_config.config_arg(path, tokens=False)}"


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PtdeskError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}).",
                          "Check its permissions; ptdesk only ever adds one Include line to it.") from None


def _position(config: Config, lines: list[str]) -> tuple[int | None, int | None]:
    """(index of our Include line, index of the first Host/Match line), None where absent."""
    return _find(include_line(config).split(None, 1)[1], lines)


def _find(wanted: str, lines: list[str]) -> tuple[int | None, int | None]:
    def ours(line: str) -> bool:
        parts = line.strip().split(None, 1)
        return len(parts) == 2 and parts[0].lower() == "include" and parts[1].strip() == wanted

    return (next((i for i, ln in enumerate(lines) if ours(ln)), None),
            next((i for i, ln in enumerate(lines) if _BLOCK.match(ln)), None))


def installed(config: Config, path: Path | None = None) -> bool:
    """Whether ~/.ssh/config includes ptdesk's config where it applies to every host (before any
    Host/Match line). Never raises: an unreadable file means "no". Listings ask for every SSH
    experiment, so the answer is kept until the file changes."""
    path = path or user_config_path()
    try:
        seen = path.stat()
        wanted = include_line(config).split(None, 1)[1]
    except (OSError, PtdeskError):
        return False
    return _installed(wanted, str(path), seen.st_ino, seen.st_mtime_ns, seen.st_size)


@functools.lru_cache(maxsize=32)
def _installed(wanted: str, path: str, _ino: int, _mtime: int, _size: int) -> bool:
    try:
        ours, block = _find(wanted, _lines(Path(path)))
    except PtdeskError:
        return False
    return ours is not None and (block is None or ours < block)


def install(config: Config, path: Path | None = None) -> bool:
    """Add the Include line at the top of ~/.ssh/config; False when it was there already.

    The file keeps its mode (a new one is 0600; a missing ~/.ssh is made 0700), is rewritten
    atomically, and a symlinked config (dotfile managers) is written where the link points.
    """
    path = path or user_config_path()
    lines = _lines(path)
    ours, block = _position(config, lines)
    if ours is not None and (block is None or ours < block):
        return False
    if ours is not None:
        raise PtdeskError(f"{path} has ptdesk's Include on line {ours + 1}, below a Host or Match line, where "
                          "it applies to that block only.", "Move that line to the top of the file.")
    target = Path(os.path.realpath(path))
    if not target.parent.exists():  # no ~/.ssh yet: made as ssh wants it; an existing one is left as it is
        target.parent.mkdir(mode=0o700, parents=True)
    old = target.read_bytes() if target.exists() else b""
    mode = (target.stat().st_mode & 0o7777) if target.exists() else 0o600
    private_files.write_atomically(target, (include_line(config) + "\n").encode() + old, mode)
    return True




def uninstall(config: Config, path: Path | None = None) -> bool:
    """Take ptdesk's Include line out of ~/.ssh/config again, changing nothing else (mode, links
    and every other line kept); False when it was not there."""
    path = path or user_config_path()
    lines = _lines(path)
    wanted = include_line(config).split(None, 1)[1]
    kept = [ln for ln in lines if _find(wanted, [ln])[0] is None]
    if len(kept) == len(lines):
        return False
    target = Path(os.path.realpath(path))
    text = target.read_bytes().decode()
    ending = "\n" if text.endswith("\n") else ""
    private_files.write_atomically(target, ("\n".join(kept) + ending if kept else "").encode(),
                                   target.stat().st_mode & 0o7777)
    return True
