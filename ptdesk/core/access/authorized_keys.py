"""The authorized_keys files of an SSH experiment: rendered from ptdesk's records, installed atomically.

Each person has an account of their own (ptdesk.core.access.accounts): the owner's is "ptdesk", each
granted collaborator's is their name. Each account's keys live at /etc/ptdesk/authorized_keys/<account>,
root-owned, so only ptdesk changes them. sshd re-reads the file at every login, so replacing it
(write aside, rename over) grants or revokes a key for new logins at once, with no restart and no
moment where the file is half written. The owner's personal key pair (keys/users/<owner>/) is made
here on first use and outlives every container.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.base import keys, names
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.store import experiment_files
from ptdesk.errors import PtdeskError

CONTAINER_USER = "ptdesk"  # the owner's account (the host uid)
AUTHORIZED_KEYS_DIR = "/etc/ptdesk/authorized_keys"
ACCOUNTS_DIR = "/etc/ptdesk"
ACCOUNTS_FILE = "accounts"  # "NAME UID" per collaborator account, read by ptdesk-accounts
ACCOUNTS_SCRIPT = "/usr/local/sbin/ptdesk-accounts"
AUTHORIZED_KEYS_PATH = f"{AUTHORIZED_KEYS_DIR}/{CONTAINER_USER}"
COLLABORATOR_MARK = "ptdesk-collaborator:"


def owner_key(config: Config, owner: str) -> tuple[Path, str]:
    """The owner's personal key pair, made on first use; it outlives every container."""
    return keys.load_or_create(experiment_files.user_key_dir(config, owner), comment=f"{owner}@ptdesk")


def sshd_expiry(expires: float | None) -> str | None:
    """sshd's expiry-time form, in UTC (the Z suffix) so the container's time zone cannot shift it,
    to the second (cut to the minute, a 15 s expiry would already be past)."""
    return None if expires is None else time.strftime("%Y%m%d%H%M%SZ", time.gmtime(expires))


@dataclass(frozen=True)
class GrantedKey:
    """One collaborator key line: whose, the public key, and when it stops working (None: never)."""

    collaborator: str
    public_line: str
    expires: float | None = None


def render_authorized_keys(owner_key: str, extra_keys: Iterable[str] = (), granted: Iterable[GrantedKey] = ()) -> str:
    """THE authorized_keys text of an SSH experiment, at launch and after every grant change.

    The owner's key line first, then the keys the owner brought, then each granted collaborator
    key line with its expiry time (enforced by sshd itself) and, as its comment, the marker
    `ptdesk-collaborator:NAME`: should the store be lost, adoption knows these keys for what they
    are (collaborators, restored as such) and never mistakes them for keys the owner brought.
    """
    lines = [keys.authorized_keys_line(line) for line in (owner_key, *extra_keys)]
    lines += [keys.authorized_keys_line(_marked(g), expiry=sshd_expiry(g.expires)) for g in granted]
    return "".join(line + "\n" for line in lines)


def render_account_files(owner_key: str, extra_keys: Iterable[str] = (),
                         granted: Iterable[GrantedKey] = ()) -> dict[str, str]:
    """THE authorized_keys files of an SSH experiment, by account: the owner's account holds the
    owner's key and the keys the owner brought; each collaborator's account holds only their own
    lines (rendered, marked and expiring exactly as render_authorized_keys renders them)."""
    files = {CONTAINER_USER: render_authorized_keys(owner_key, extra_keys)}
    for key in granted:
        line = keys.authorized_keys_line(_marked(key), expiry=sshd_expiry(key.expires)) + "\n"
        files[key.collaborator] = files.get(key.collaborator, "") + line
    return files


def _marked(granted: GrantedKey) -> str:
    key_type, blob = granted.public_line.split()[:2]
    return f"{key_type} {blob} {COLLABORATOR_MARK}{granted.collaborator}"


def collaborator_of(line: str) -> str | None:
    """The collaborator an authorized_keys line was rendered for (its marker), or None."""
    comment = line.split()[-1] if line.split() else ""
    name = comment.removeprefix(COLLABORATOR_MARK) if comment.startswith(COLLABORATOR_MARK) else None
    return name if name and names.USER_NAME_RE.fullmatch(name) else None


def expiry_of(options: str) -> float | None:
    """The expiry-time option of a line as epoch seconds (None: none, or unreadable)."""
    found = re.search(r'expiry-time="(\d{12}(?:\d{2})?)Z"', options)
    if not found:
        return None
    stamp = found.group(1).ljust(14, "0")
    return float(calendar.timegm(time.strptime(stamp, "%Y%m%d%H%M%S")))


def install_authorized_keys(engine: Engine, container: str, files: dict[str, str], accounts: str,
                            running: bool) -> None:
    """Replace the container's authorized_keys files and accounts list, running or stopped.

    put_archive extracts in place, which could let a login read a half-written file; so in a
    running container the new files are placed aside and ptdesk-accounts (shipped in the image)
    renames each over the old one, makes the accounts listed, and takes away the files and login
    rights of accounts no longer listed. A stopped container gets the files in place; its
    entrypoint runs the same script at boot, before sshd starts.
    """
    if not running:
        engine.put_files(container, AUTHORIZED_KEYS_DIR,
                         [FileSpec(account, text.encode(), mode=0o644) for account, text in files.items()])
        engine.put_files(container, ACCOUNTS_DIR, [FileSpec(ACCOUNTS_FILE, accounts.encode(), mode=0o644)])
        return
    engine.put_files(container, AUTHORIZED_KEYS_DIR,
                     [FileSpec(f".{account}.new", text.encode(), mode=0o644) for account, text in files.items()])
    engine.put_files(container, ACCOUNTS_DIR, [FileSpec(f".{ACCOUNTS_FILE}.new", accounts.encode(), mode=0o644)])
    rc, out = engine.exec(container, [ACCOUNTS_SCRIPT])
    if rc in (126, 127):  # an image made before per-person accounts: no script to run
        staged = [f"{AUTHORIZED_KEYS_DIR}/.{a}.new" for a in files if a != CONTAINER_USER]
        engine.exec(container, ["rm", "-f", f"{ACCOUNTS_DIR}/.{ACCOUNTS_FILE}.new", *staged])  # nothing left behind
        if set(files) != {CONTAINER_USER} or accounts:
            engine.exec(container, ["rm", "-f", f"{AUTHORIZED_KEYS_DIR}/.{CONTAINER_USER}.new"])
            raise PtdeskError(f"The image of {container[:12]} cannot give collaborators accounts of their own.",
                              "Rebuild the SSH image (ptdesk images build ssh) and launch the experiment anew.")
        # Owner only: the owner's file, as it was done then.
        rc, out = engine.exec(container, ["mv", "-f", f"{AUTHORIZED_KEYS_DIR}/.{CONTAINER_USER}.new",
                                          AUTHORIZED_KEYS_PATH])
    if rc != 0:
        raise PtdeskError(f"Could not install the new authorized_keys in {container[:12]}: "
                          f"{out.decode(errors='replace').strip()}")


def read_authorized_keys(engine: Engine, container: str, account: str = CONTAINER_USER) -> str:
    """One account's authorized_keys ("" when the account has none)."""
    try:
        return engine.read_file(container, f"{AUTHORIZED_KEYS_DIR}/{account}").decode()
    except PtdeskError:
        if account == CONTAINER_USER:
            raise
        return ""


def read_accounts(engine: Engine, container: str) -> list[tuple[str, int]]:
    """The collaborator accounts (name, uid) the container's accounts file lists ([] when none)."""
    try:
        text = engine.read_file(container, f"{ACCOUNTS_DIR}/{ACCOUNTS_FILE}").decode(errors="replace")
    except PtdeskError:
        return []
    found = [line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2]
    return [(name, int(uid)) for name, uid in found
            if names.USER_NAME_RE.fullmatch(name) and name != CONTAINER_USER and uid.isdigit()]
