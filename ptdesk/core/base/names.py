"""Names: of experiments, of people (owners and collaborators) and of the containers that carry them.

Every pattern is used with fullmatch only: `$` would also match before a trailing newline.
"""

from __future__ import annotations

import os
import re

from ptdesk.config import Config
from ptdesk.core.base.models import LABEL_NAME
from ptdesk.errors import InvalidInput

# A Unix-style user name: owners and collaborators. Each names a key folder, so nothing path-like.
USER_NAME_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

# An experiment's name: it becomes a container name, a host name and an ssh alias.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,40}")
OWNER_RE = USER_NAME_RE  # owners are user names: one pattern for owners and collaborators


def container_name(config: Config, name: str) -> str:
    """Engine-wide container name; the instance keeps separate installations apart."""
    return f"ptdesk-{name}" if config.instance == "default" else f"ptdesk-{config.instance}-{name}"


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a valid experiment name.",
                           "Use 1-41 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def validate_owner(owner: str) -> str:
    if not OWNER_RE.fullmatch(owner):
        raise InvalidInput(f"{owner!r} is not a valid owner name.", "Use a Unix-style user name, like alice.")
    return owner


def container_key(container: dict) -> str:
    """The name people use: the ptdesk.name label, or the engine's name for an unnamed orphan."""
    return (container.get("Labels") or {}).get(LABEL_NAME) or (container.get("Names") or ["/?"])[0].lstrip("/")


def current_user() -> str:
    """The person running ptdesk (the one who ran sudo, when it runs under sudo)."""
    import getpass

    return os.environ.get("SUDO_USER") or getpass.getuser()

