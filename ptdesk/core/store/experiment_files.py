"""Per-experiment files ptdesk keeps on the host: PTDESK_HOME/experiments/<name>/ (0700).

What lives here is what a container was given that ptdesk must remember: the pinned host key
(public half only), the known_hosts file for clients, the Jupyter token. Removing an experiment
removes this folder; the owner's personal key lives elsewhere (keys/users/) and stays.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.base.private_files import ensure_private_dir, write_secret


def folder(config: Config, name: str) -> Path:
    return config.home / "experiments" / name


def write(config: Config, name: str, filename: str, data: str, mode: int = 0o600) -> Path:
    path = folder(config, name) / filename
    ensure_private_dir(path.parent)
    write_secret(path, data.encode(), mode)
    return path


def read(config: Config, name: str, filename: str) -> str | None:
    try:
        return (folder(config, name) / filename).read_text()
    except FileNotFoundError:
        return None


def discard(config: Config, name: str) -> None:
    shutil.rmtree(folder(config, name), ignore_errors=True)


def user_key_dir(config: Config, owner: str) -> Path:
    return config.keys_dir / "users" / owner
