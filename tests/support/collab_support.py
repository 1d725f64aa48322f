"""What the collaborator and rotation suites share: the module's boxes and the login helpers."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.access import authorized_keys
from ptdesk.core.access.sshcheck import LoginResult, try_login
from ptdesk.core.engine.client import Engine

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py


# --- helpers ------------------------------------------------------------------------------------


def attempt(p: Ptdesk, experiment: str, key: Path, account: str | None = None) -> LoginResult:
    """One login with the experiment's pinned host key (paramiko), as `account` (a collaborator's
    own account, named after them) or the owner's account."""
    ssh = p.listed()[experiment]["ssh"]
    host_key = ssh["known_hosts"].split(None, 1)[1]
    return try_login(ssh["host"], ssh["port"], account or ssh["user"], key, host_key)


def logs_in(p: Ptdesk, experiment: str, key: Path, account: str | None = None) -> bool:
    result = attempt(p, experiment, key, account)
    assert result.ok or result.detail.startswith("refused"), f"{experiment}: {result.detail}"
    return result.ok


def openssh(config: Path, host: str) -> subprocess.CompletedProcess[str]:
    """The real OpenSSH client, configured only by an exported ssh_config."""
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", host, "id -un"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def add(p: Ptdesk, name: str, *args: object) -> dict:
    return p.json("collab", "add", name, *args)


def keep_copy(source: str | Path, dest: Path) -> Path:
    """A copy of a private key as the person holds it (0600, like ssh wants)."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.write_bytes(Path(source).read_bytes())
    dest.chmod(0o600)
    return dest


def assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path}: {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, f"{path.parent}: {oct(path.parent.stat().st_mode)}"


def authorized(engine: Engine, p: Ptdesk, experiment: str, account: str) -> str:
    """The authorized_keys of one account (each collaborator's keys are in their own account's)."""
    return authorized_keys.read_authorized_keys(engine, p.listed()[experiment]["id"], account)


def pending_of(p: Ptdesk, name: str) -> list[str]:
    return next(c for c in p.json("collab", "ls") if c["name"] == name)["pending"]
