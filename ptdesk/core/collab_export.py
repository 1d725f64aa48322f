"""What a collaborator takes home: their key, an ssh_config and the pinned known_hosts.

The files are written here, but the ssh_config names them where the person will keep the folder on
their own machine, since no path of this machine exists on theirs.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core import keys
from ptdesk.core.authorized_keys import CONTAINER_USER
from ptdesk.core.collab import PREVIOUS, PRIVATE, collaborator, key_dir
from ptdesk.errors import InvalidInput

if TYPE_CHECKING:
    from ptdesk.core.workstation import Workstation

# Where an export's folder lives on the person's own machine, unless --dest says otherwise; the
# literal ~ is for their ssh to expand.
DEFAULT_DEST = "~/.ssh/ptdesk-{name}"


def _private_folder(path: Path) -> Path:
    """A new 0700 folder, or an existing one only others cannot read (never chmod someone's /tmp)."""
    if not path.exists():
        return keys.ensure_private_dir(path)
    if not path.is_dir():
        raise InvalidInput(f"{path} is not a folder.", "Name a new folder to export into.")
    if path.stat().st_mode & 0o077:
        raise InvalidInput(f"{path} can be read by other users, so a private key cannot go there.",
                           "Name a new folder (ptdesk makes it 0700), or chmod 700 this one.")
    return path


def destination(name: str, dest: str | None = None) -> str:
    """Where an exported folder will live on the person's own machine, as their ssh reads it.

    Absolute or starting with ~ (their ssh expands it), so ssh finds the files from any working
    directory; never a path of this machine, which does not exist on theirs.
    """
    default = DEFAULT_DEST.format(name=name)
    where = (dest or default).strip()
    if not where.startswith(("~", "/")):
        raise InvalidInput(f"The destination {where!r} is not absolute, so ssh would look for it in whatever "
                           "folder the person runs ssh from.",
                           f"Give the path the folder will have on their machine, like {default}.")
    # ssh_config has no escape for '"', and expands %-tokens in these paths.
    if any(ch in '"%' or not ch.isprintable() for ch in where):
        raise InvalidInput(f"The destination {where!r} cannot be written into an ssh_config.",
                           "Use a path without quotes, % signs or control characters.")
    return where.rstrip("/") or "/"


def _config_path(dest: str, filename: str) -> str:
    """A file in `dest` as an ssh_config argument: quoted when it holds spaces (ssh strips the quotes)."""
    path = posixpath.join(dest, filename)
    return f'"{path}"' if " " in path else path


def export(ws: Workstation, name: str, folder: str | Path, dest: str | None = None) -> list[Path]:
    """What a collaborator needs to connect: their key (if ptdesk made it), ssh_config, known_hosts.

    The files are written to `folder` here; ssh_config names them where the person will keep the
    folder on their own machine (`destination(name, dest)`, ~/.ssh/ptdesk-NAME by default).
    It has one Host entry per experiment they may reach, pinned to the host key in the known_hosts
    next to it. While a rotation is unfinished somewhere, the previous key is included too and
    offered (after the new one) for those experiments only.
    """
    record = collaborator(ws, name)
    remote = destination(name, dest)
    out = _private_folder(Path(folder).expanduser().absolute())
    config, written = ws.config, []
    if record.identity_file:
        pair = [(PRIVATE, Path(record.identity_file))]
        if record.previous_fingerprint and (source := key_dir(config, name) / PREVIOUS).exists():
            pair.append((PREVIOUS, source))
        for stem, source in pair:
            keys.write_secret(out / stem, source.read_bytes(), 0o600)
            written.append(out / stem)
    keys.write_secret(out / f"{PRIVATE}.pub", (record.public_key + "\n").encode(), 0o644)
    written.append(out / f"{PRIVATE}.pub")
    entries, known = [f"# ptdesk access for {name} ({record.fingerprint})\n"], []
    for grant_ in ws.store.grants(collaborator=name):
        exp = ws.store.experiment(grant_.experiment)
        if exp is None or not exp.port or not exp.host_public_key:
            continue
        host = config.connect_host
        known.append(keys.host_known_hosts_line(host, exp.port, exp.host_public_key) + "\n")
        lines = [f"Host {exp.name}", f"    HostName {host}", f"    Port {exp.port}", f"    User {CONTAINER_USER}"]
        if record.identity_file:
            lines.append(f"    IdentityFile {_config_path(remote, PRIVATE)}")
            if record.previous_fingerprint in grant_.installed and (out / PREVIOUS).exists():
                lines.append(f"    IdentityFile {_config_path(remote, PREVIOUS)}")
        else:
            lines.append(f"    # IdentityFile: your own private key for {record.fingerprint}")
        lines += ["    IdentitiesOnly yes", f"    UserKnownHostsFile {_config_path(remote, 'known_hosts')}",
                  "    StrictHostKeyChecking yes", ""]
        entries.append("\n".join(lines) + "\n")
    keys.write_secret(out / "ssh_config", "".join(entries).encode(), 0o600)
    keys.write_secret(out / "known_hosts", "".join(known).encode(), 0o644)
    written += [out / "ssh_config", out / "known_hosts"]
    ws.store.audit("collab-export", name, {"fingerprint": record.fingerprint, "folder": str(out),
                                             "dest": remote})
    return written
