"""The door for administering workstations (what `ptdesk workstations` does): host keys offered and
pinned, the login key, the `[workstations.NAME]` tables of config.toml, and a connection test.

config.toml is edited as text (a table appended, or its lines removed) so that a person's comments
and layout stay; the result is parsed again before it replaces the file (atomically), so a bad edit
never leaves a config ptdesk cannot read.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.config import Config, WorkstationEntry, for_workstation
from ptdesk.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from ptdesk.core.engine.remote import HostKey


@dataclass(frozen=True)
class TestResult:
    workstation: str
    ok: bool
    message: str
    seconds: float

    def to_json(self) -> dict:
        return {"workstation": self.workstation, "ok": self.ok, "message": self.message,
                "seconds": round(self.seconds, 3)}


def _table(entry: WorkstationEntry) -> str:
    lines = [f"[workstations.{entry.name}]", f"engine = {json.dumps(entry.engine)}"]
    for key in ("address", "bind_address", "identity_file"):
        value = getattr(entry, key)
        if value is not None:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


def _replace_config(config: Config, text: str) -> None:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - we only append or drop whole tables
        raise ConfigError(f"Editing {config.config_path} would break it ({exc}); left as it was.") from None
    config.home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=config.home, prefix=".config.toml.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if config.config_path.exists():
        os.chmod(tmp, config.config_path.stat().st_mode & 0o777)
    os.replace(tmp, config.config_path)


def add_entry(config: Config, entry: WorkstationEntry, make_default: bool = False) -> None:
    text = config.config_path.read_text() if config.config_path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    if make_default:
        text = re.sub(r"(?m)^default_workstation\s*=.*\n?", "", text)
        # Top-level keys must come before the first table to stay top-level.
        text = f"default_workstation = {json.dumps(entry.name)}\n" + text
    _replace_config(config, text + ("\n" if text else "") + _table(entry))


def remove_entry(config: Config, name: str) -> None:
    from ptdesk.core.engine import remote
    if name not in config.workstations:
        raise NotFound(f"There is no workstation {name!r}.", "List them with: ptdesk workstations ls")
    kept, skipping = [], False
    for line in config.config_path.read_text().splitlines(keepends=True):
        header = re.fullmatch(r"\s*\[([^\]]+)\].*", line, re.S)  # a table header (and what follows it)
        if header:
            skipping = header.group(1).strip() in (f"workstations.{name}", f'workstations."{name}"')
        if not skipping:
            kept.append(line)
    text = "".join(kept)
    if config.default_workstation == name:
        text = re.sub(r"(?m)^default_workstation\s*=.*\n?", "", text)
    _replace_config(config, text)
    remote.unpin(config, config.workstations[name])


def test(config: Config, entry: WorkstationEntry) -> TestResult:
    from ptdesk.core.engine import remote
    started = time.monotonic()
    try:
        engine = remote.connect(config, entry, timeout=15)
    except Exception as exc:  # every failure is a line of the report, not a crash
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return TestResult(entry.name, False, message, time.monotonic() - started)
    try:
        version = engine.version()
    finally:
        engine.close()
    return TestResult(entry.name, True, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                      f"as {entry.user}@{entry.host}:{entry.port}", time.monotonic() - started)


# --- host keys and the login key (ptdesk.core.engine.remote does the SSH) -----------------------------


def offered_host_key(entry: WorkstationEntry) -> HostKey:
    from ptdesk.core.engine import remote
    return remote.scan_host_key(entry)


def pinned_host_key(config: Config, entry: WorkstationEntry) -> HostKey | None:
    from ptdesk.core.engine import remote
    return remote.pinned_key(config, entry)


def pin_host_key(config: Config, entry: WorkstationEntry, key: HostKey) -> None:
    from ptdesk.core.engine import remote
    remote.pin(config, entry, key)


def login_key(config: Config, entry: WorkstationEntry) -> Path:
    from ptdesk.core.engine import remote
    return remote.identity_of(config, entry)


def state_folder(config: Config, entry: WorkstationEntry) -> Path:
    return for_workstation(config, entry).home
