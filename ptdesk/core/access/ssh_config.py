"""ptdesk's own OpenSSH config, so that `ssh NAME` (and VS Code's host list) just works.

PTDESK_HOME/ssh/config holds one `Host NAME` block per SSH experiment of this ptdesk that has an
address (running or stopped: its port survives a stop): HostName, Port, User, the owner's key
only, and the host key pinned in a known_hosts file of its own (ssh/known_hosts.d/NAME) under a
HostKeyAlias, so the pin belongs to the experiment, not to whichever container has that port next.

The file is rendered from the store and rewritten atomically (write aside, rename over) whenever
what it says can change: launch, start, adoption (Kind.after_start) and release. `render_host`
is THE renderer of Host blocks: collaborator exports use it too (ptdesk.core.collaborators.export).
The person's own ~/.ssh/config is touched only by `ptdesk ssh-config --install`
(ptdesk.core.access.ssh_include).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ptdesk.config import LOCAL, Config, for_workstation
from ptdesk.core.access.authorized_keys import CONTAINER_USER
from ptdesk.core.base import private_files
from ptdesk.core.base.text import printable
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord, read_experiments
from ptdesk.errors import InvalidInput, PtdeskError

# Experiment names (ptdesk.core.experiments.spec.NAME_RE): no space, quote, glob or '!' that ssh would read.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,40}")
HEADER = ("# Written by ptdesk; rewritten whenever an SSH experiment is launched, started or removed.\n"
          "# Do not edit: use it with `ssh -F {path} NAME`, or `ptdesk ssh-config --install{on}`.\n")


@dataclass(frozen=True)
class HostEntry:
    """One `Host` block. Paths are as the reading machine's ssh must see them (quoted by render)."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]  # empty: the person brings their own key (a comment says which)
    known_hosts: str
    host_key_alias: str
    proxy_jump: str | None = None
    note: str | None = None  # a comment line inside the block


def alias(config: Config, name: str) -> str:
    """The one `Host` name that reaches experiment `name` of this workstation, unique across every
    workstation's config (each may be Included in ~/.ssh/config, and OpenSSH takes the first block
    that matches): the bare name on the local one, `NAME.WORKSTATION` on the others. A name with a
    dot (or `localhost`) could be a real host (`github.com`) that the Include would hijack, so it
    never becomes a bare alias: `NAME.local`. Workstation names have no dot, so the part after the
    last dot always says which workstation an alias belongs to."""
    if config.workstation == LOCAL and "." not in name and name != "localhost":
        return name
    return f"{name}.{config.workstation}"


def split_alias(alias_text: str) -> tuple[str, str]:
    """(experiment name, workstation) an alias names; a bare name is the local workstation's."""
    name, dot, workstation = alias_text.rpartition(".")
    return (name, workstation) if dot else (alias_text, LOCAL)


def host_key_alias(name: str) -> str:
    """The name the host key is pinned under (HostKeyAlias), the same here and in exports."""
    return f"ptdesk.{name}"


def config_arg(value: str, tokens: bool = True) -> str:
    """`value` as one ssh_config argument: %-tokens escaped where ssh expands them, quoted when it
    holds spaces. ssh_config has no escape for '"' or control characters: those are refused."""
    if any(ch == '"' or not ch.isprintable() for ch in value):
        raise InvalidInput(f"{value!r} cannot be written into an ssh config.",
                           "Use a path without quotes or control characters.")
    if tokens:
        value = value.replace("%", "%%")
    return f'"{value}"' if " " in value or "#" in value else value


# One ssh_config word: nothing that ends the line, starts a comment, quotes or splits arguments.
_WORD = re.compile(r"[A-Za-z0-9_.@:\[\]+-]+")


def config_word(value: str, what: str) -> str:
    """`value` if ssh reads it as exactly one argument; InvalidInput otherwise (a newline in a host
    name would otherwise add a directive such as ProxyCommand, which runs a command)."""
    if not _WORD.fullmatch(value):
        raise InvalidInput(f"The {what} {value!r} cannot be written into an ssh config.",
                           "Use a plain host name, address or user name: no spaces, quotes, '#' or newlines.")
    return value


def render_host(entry: HostEntry) -> str:
    """THE text of one Host block (ptdesk's config, collaborator exports). Every value is checked
    here, whatever checked it before: this is where text becomes ssh configuration."""
    for value, what in ((entry.alias, "name"), (entry.hostname, "host name"), (entry.user, "user"),
                        (entry.host_key_alias, "host key alias"), (entry.proxy_jump or "x", "jump host")):
        config_word(value, what)
    lines = [f"Host {entry.alias}"]
    if entry.note:
        lines.append(f"    # {printable(entry.note)}")
    lines += [f"    HostName {entry.hostname}", f"    Port {entry.port}", f"    User {entry.user}"]
    lines += [f"    IdentityFile {path}" for path in entry.identity_files]
    lines += ["    IdentitiesOnly yes", f"    UserKnownHostsFile {entry.known_hosts}",
              f"    HostKeyAlias {entry.host_key_alias}", "    StrictHostKeyChecking yes"]
    if entry.proxy_jump:
        lines.append(f"    ProxyJump {entry.proxy_jump}")
    return "\n".join(lines) + "\n\n"


def known_hosts_text(name: str, host_public_key: str) -> str:
    """The pinned host key under the experiment's HostKeyAlias, one known_hosts line."""
    key_type, blob = host_public_key.split()[:2]
    return f"{host_key_alias(name)} {key_type} {blob}\n"


# --- ptdesk's own config -----------------------------------------------------------------------
def folder(config: Config) -> Path:
    return config.home / "ssh"


def config_path(config: Config) -> Path:
    return folder(config) / "config"


def known_hosts_path(config: Config, name: str) -> Path:
    return folder(config) / "known_hosts.d" / name


def reachable(records: Iterable[ExperimentRecord]) -> list[ExperimentRecord]:
    """The SSH experiments a Host block is written for: those with an address and a pinned key,
    under a name that is one plain ssh_config word (an adopted container's name came from a label)."""
    return [r for r in records if r.kind == "ssh" and r.port and r.host_public_key and _NAME.fullmatch(r.name)]


def entry_for(config: Config, record: ExperimentRecord) -> HostEntry:
    assert record.port and record.host_public_key
    key_file = experiment_files.user_key_dir(config, record.owner) / "id_ed25519"
    return HostEntry(alias=alias(config, record.name), hostname=config.connect_host, port=record.port,
                     user=CONTAINER_USER,
                     identity_files=(config_arg(str(key_file)),),
                     known_hosts=config_arg(str(known_hosts_path(config, record.name))),
                     host_key_alias=host_key_alias(record.name))


def render(config: Config, records: Iterable[ExperimentRecord]) -> str:
    text = HEADER.format(path=config_path(config),
                         on="" if config.workstation == LOCAL else f" --on {config.workstation}")
    return text + "".join(render_host(entry_for(config, r)) for r in reachable(records))


@contextlib.contextmanager
def _locked(config: Config) -> Iterator[None]:
    """One writer at a time: two ptdesk processes rewriting at once could otherwise let the one that
    read the store first rename its older text over the newer one."""
    private_files.ensure_private_dir(folder(config))
    fd = os.open(folder(config) / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def refresh(config: Config, also: ExperimentRecord | None = None) -> Path:
    """Rewrite ptdesk's ssh config and its pinned known_hosts files; returns the config's path.

    Rendered from the store's committed records, plus `also` (a record being written inside a
    transaction that has not committed yet, as adoption does). The store is only read, so this
    never waits for a transaction the caller holds. Files of experiments that are gone are removed.
    """
    with _locked(config):
        records = {r.name: r for r in read_experiments(config.state_path)}
        if also is not None:
            records[also.name] = also
        chosen = reachable(sorted(records.values(), key=lambda r: (r.created, r.name)))
        pins = private_files.ensure_private_dir(folder(config) / "known_hosts.d")
        for record in chosen:
            assert record.host_public_key
            _write_if_changed(known_hosts_path(config, record.name),
                              known_hosts_text(record.name, record.host_public_key))
        wanted = {r.name for r in chosen}
        for stale in pins.iterdir():
            if stale.name not in wanted and not stale.name.startswith("."):
                stale.unlink(missing_ok=True)
        _write_if_changed(config_path(config), render(config, chosen))
    return config_path(config)


def refresh_quietly(config: Config, also: ExperimentRecord | None = None) -> None:
    """The hooks' form: keeping this derived file current must never fail the launch, start or
    release that triggered it; the next command that changes an experiment rewrites it."""
    with contextlib.suppress(OSError, sqlite3.Error, PtdeskError):
        refresh(config, also)


def _write_if_changed(path: Path, text: str) -> None:
    if _read(path) != text:
        private_files.write_secret(path, text.encode(), 0o600)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def namesakes(home: Config, workstation: str, name: str) -> list[str]:
    """The other workstations of this ptdesk home that have an experiment named `name` (read from
    their stores on this machine: no engine is asked)."""
    found = []
    for other in (LOCAL, *home.workstations):
        if other == workstation:
            continue
        path = home.state_path if other == LOCAL else for_workstation(home, home.workstations[other]).state_path
        with contextlib.suppress(sqlite3.Error, OSError):
            if any(r.name == name for r in read_experiments(path)):
                found.append(other)
    return found


def namesake_warning(home: Config, config: Config, name: str, kind: str) -> str | None:
    """What a launch says when another workstation already has its name: which alias reaches which."""
    others = namesakes(home, config.workstation, name)
    if not others:
        return None
    said = f"{', '.join(others)} already has an experiment named {name!r}"
    if kind != "ssh":
        return f"{said}: name the workstation (--on {config.workstation}) whenever you mean this one."
    here = alias(config, name)
    theirs = "; ".join(f"`ssh {alias(replace(config, workstation=w), name)}` the one on {w}" for w in others)
    return (f"{said}: `ssh {here}` (and `ptdesk ssh {here}`) reaches this one on {config.workstation}; "
            f"{theirs}.")
