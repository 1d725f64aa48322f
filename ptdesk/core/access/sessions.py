"""Who is logged in to each SSH experiment right now, from the host's /proc, once per listing;
and a message written to a person's open terminals there (`tell_sessions`, as `wall` would).

Every open login has one sshd process running as the person's account, titled "sshd: NAME@pts/N"
(or "@notty" for commands and forwards). Its /proc/<pid>/cgroup names the container. So one pass
over /proc finds every session of every experiment: no docker exec per container, no request to
the engine. A pass reads each process's short `comm` and opens `cmdline` and `cgroup` only of
sshd processes, which keeps it to a few milliseconds on a busy host (bench/sessions_scan.py).

The same pass answers which collaborator uids run anything in each experiment (`account_uids`,
the revocation backstop at every reconcile), where the engine's ps would cost a request each.

It only works where the engine runs on this machine (its containers' processes are in this
/proc): for a container none of whose sshd processes is visible here (a remote engine, a VM, a
hidepid /proc) the answer is "unknown" (None), never "nobody".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.names import USER_NAME_RE
from ptdesk.core.gpu.procmap import PROC, container_from_cgroup

if TYPE_CHECKING:
    from ptdesk.core.engine.client import Engine

SESSION_PREFIX = "sshd: "


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:  # the process ended meanwhile, or we may not look
        return None


def scan(container_ids: Iterable[str], proc_root: Path = PROC) -> dict[str, tuple[str, ...] | None]:
    """container id -> the accounts logged in to it (sorted, each once); None where no sshd of
    that container is visible from here."""
    wanted = set(container_ids)
    seen: set[str] = set()  # containers whose sshd we could see at all
    found: dict[str, set[str]] = {}
    if not wanted:
        return {}
    for folder in _processes(proc_root):
        if (_read(folder / "comm") or "").strip() != "sshd":
            continue
        if (container := _container(folder, wanted)) is None:
            continue
        seen.add(container)
        title = (_read(folder / "cmdline") or "").split("\0", 1)[0]
        account = _account(title)
        if account:
            found.setdefault(container, set()).add(account)
    return {cid: tuple(sorted(found.get(cid, ()))) if cid in seen else None for cid in wanted}


def account_uids(container_ids: Iterable[str], accounts: range,
                 proc_root: Path = PROC) -> dict[str, frozenset[int] | None]:
    """container id -> the uids within `accounts` that its processes run as (real, effective, saved
    or filesystem uid), from one pass over /proc; None where none of its sshd processes is visible
    from here (the caller then asks the engine). Reads each process's `status` (its name and uids)
    and the cgroup only of sshd processes and of processes running as one of `accounts`."""
    wanted = set(container_ids)
    if not wanted:
        return {}
    seen: set[str] = set()
    found: dict[str, set[int]] = {}
    for folder in _processes(proc_root):
        name, uids = _name_and_uids(_read(folder / "status") or "")
        ours = {uid for uid in uids if uid in accounts}
        if name != "sshd" and not ours:
            continue
        if (container := _container(folder, wanted)) is None:
            continue
        if name == "sshd":
            seen.add(container)
        found.setdefault(container, set()).update(ours)
    return {cid: frozenset(found.get(cid, ())) if cid in seen else None for cid in wanted}


def _processes(proc_root: Path) -> list[Path]:
    """The /proc folder of every process there now (none when /proc cannot be listed)."""
    try:
        return [proc_root / e.name for e in os.scandir(proc_root) if e.name.isdigit()]
    except OSError:
        return []


def _container(folder: Path, wanted: set[str]) -> str | None:
    """The id of the container (one of `wanted`) whose cgroup the process at `folder` is in."""
    cgroup = _read(folder / "cgroup")
    ref = container_from_cgroup(cgroup) if cgroup else None
    return ref.id if ref is not None and ref.id in wanted else None


def _name_and_uids(status: str) -> tuple[str, set[int]]:
    """The process name and its four uids from a /proc/PID/status text (empty when unreadable)."""
    name, uids = "", set()
    for line in status.splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Uid:"):
            uids = {int(field) for field in line[4:].split() if field.isdigit()}
            break  # Uid comes after Name
    return name, uids


def _account(title: str) -> str | None:
    """The account of a session process title "sshd: NAME@TTY" (None for the listener, the
    privileged monitor "sshd: NAME [priv]" and anything else)."""
    if not title.startswith(SESSION_PREFIX):
        return None
    name, at, _ = title[len(SESSION_PREFIX):].partition("@")
    return name if at and USER_NAME_RE.fullmatch(name) else None


# Run as the person's own account: their terminals are theirs to write to (cap_drop=ALL leaves root
# in the container no DAC override), and nobody else's terminal can be touched this way.
_WALL = 'm=$1; for t in /dev/pts/[0-9]*; do [ -O "$t" ] && printf "%s" "$m" > "$t" && echo "$t"; done; true'


def tell_sessions(engine: Engine, container_id: str, uid: int, text: str, moment: float) -> int:
    """Write `text` to every open terminal of account `uid` in the container, as `wall` would;
    how many terminals got it."""
    clean = "".join(ch for ch in text if ch.isprintable() or ch == "\n").replace("\n", "\r\n")
    banner = f"\r\n\aBroadcast message from ptdesk ({time.strftime('%a %b %d %H:%M', time.localtime(moment))}):"
    rc, out = engine.exec(container_id, ["sh", "-c", _WALL, "sh", f"{banner}\r\n\r\n{clean}\r\n\r\n"], user=str(uid))
    return len(out.split()) if rc == 0 else 0


def tell_everyone(engine: Engine, container_id: str, text: str, moment: float) -> int:
    """`text` to every open terminal in the container, each written as the account that owns it
    (root there cannot write to others' terminals: cap_drop=ALL leaves it no DAC override). Root
    only reads who owns which terminal; how many terminals got it."""
    rc, out = engine.exec(container_id, ["sh", "-c", 'for t in /dev/pts/[0-9]*; do [ -c "$t" ] && stat -c %u "$t"; '
                                         "done; true"])
    uids = sorted({int(u) for u in out.decode(errors="replace").split() if u.isdigit()}) if rc == 0 else []
    return sum(tell_sessions(engine, container_id, uid, text, moment) for uid in uids)
