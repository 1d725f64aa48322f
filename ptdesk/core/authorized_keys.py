"""The authorized_keys file of an SSH experiment: rendered from ptdesk's records, installed atomically.

It lives at /etc/ptdesk/authorized_keys/<user>, root-owned, so only ptdesk changes it. sshd re-reads
it at every login, so replacing the file (write aside, rename over) grants or revokes a key for new
logins at once, with no restart and no moment where the file is half written. The owner's personal
key pair (keys/users/<owner>/) is made here on first use and outlives every container.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core import experiment_files, keys
from ptdesk.core.engine import Engine, FileSpec
from ptdesk.errors import PtdeskError

CONTAINER_USER = "ptdesk"
AUTHORIZED_KEYS_DIR = "/etc/ptdesk/authorized_keys"
AUTHORIZED_KEYS_PATH = f"{AUTHORIZED_KEYS_DIR}/{CONTAINER_USER}"


def owner_key(config: Config, owner: str) -> tuple[Path, str]:
    """The owner's personal key pair, made on first use; it outlives every container."""
    return keys.load_or_create(experiment_files.user_key_dir(config, owner), comment=f"{owner}@ptdesk")


def sshd_expiry(expires: float | None) -> str | None:
    """sshd's expiry-time form, in UTC (the Z suffix) so the container's time zone cannot shift it,
    to the second (cut to the minute, a 15 s expiry would already be past)."""
    return None if expires is None else time.strftime("%Y%m%d%H%M%SZ", time.gmtime(expires))


def render_authorized_keys(owner_key: str, extra_keys: Iterable[str] = (),
                           granted: Iterable[tuple[str, float | None]] = ()) -> str:
    """THE authorized_keys text of an SSH experiment, at launch and after every grant change.

    The owner's key line first, then the keys the owner brought, then each granted collaborator
    key line with its expiry time (None: no expiry), which sshd itself enforces.
    """
    lines = [keys.authorized_keys_line(line) for line in (owner_key, *extra_keys)]
    lines += [keys.authorized_keys_line(line, expiry=sshd_expiry(expires)) for line, expires in granted]
    return "".join(line + "\n" for line in lines)


def install_authorized_keys(engine: Engine, container: str, text: str, running: bool) -> None:
    """Replace the container's authorized_keys atomically (rename over), running or stopped.

    put_archive extracts in place, which could let a login read a half-written file; so in a
    running container the new file is placed aside and renamed over the old one.
    """
    if not running:
        engine.put_files(container, AUTHORIZED_KEYS_DIR,
                         [FileSpec(CONTAINER_USER, text.encode(), mode=0o644)])
        return
    staged = f".{CONTAINER_USER}.new"
    engine.put_files(container, AUTHORIZED_KEYS_DIR, [FileSpec(staged, text.encode(), mode=0o644)])
    rc, out = engine.exec(container, ["mv", "-f", f"{AUTHORIZED_KEYS_DIR}/{staged}", AUTHORIZED_KEYS_PATH])
    if rc != 0:
        raise PtdeskError(f"Could not install the new authorized_keys in {container[:12]}: "
                          f"{out.decode(errors='replace').strip()}")


def read_authorized_keys(engine: Engine, container: str) -> str:
    return engine.read_file(container, AUTHORIZED_KEYS_PATH).decode()
