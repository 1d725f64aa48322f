"""What a collaborator takes home: their key, an ssh_config and the pinned known_hosts.

The files are written here, but the ssh_config names them where the person will keep the folder on
their own machine, since no path of this machine exists on theirs.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.access import ssh_config
from ptdesk.core.base import private_files
from ptdesk.core.collaborators.grants import PREVIOUS, PRIVATE, collaborator, key_dir
from ptdesk.errors import InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

# Where an export's folder lives on the person's own machine, unless --dest says otherwise; the
# literal ~ is for their ssh to expand.
DEFAULT_DEST = "~/.ssh/ptdesk-{name}"


def _private_folder(path: Path, create: bool = True) -> Path:
    """A new 0700 folder, or an existing one only others cannot read (never chmod someone's /tmp);
    with create=False only checked (made later, once nothing else can fail)."""
    if not path.exists():
        return private_files.ensure_private_dir(path) if create else path
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
    return ssh_config.config_arg(posixpath.join(dest, filename))


# Used with fullmatch: a jump host goes into ssh_config lines, where a newline would start a new one.
_JUMP = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}@)?(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\])"
                   r"(?::(\d{1,5}))?")


def jump_host(text: str | None) -> str | None:
    """`user@bastion[:port]` checked for a ProxyJump line (None: no jump host)."""
    if text is None:
        return None
    match = _JUMP.fullmatch(text.strip())
    if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
        raise InvalidInput(f"The jump host {text!r} is not user@host[:port].",
                           "Like --jump alice@bastion.example.org or --jump alice@10.0.0.1:2222.")
    return text.strip()


@dataclass(frozen=True)
class Exported:
    """What `collab export` wrote, the Host names in its ssh_config, and what the person must know."""

    paths: tuple[Path, ...]
    hosts: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def export(site: Site, name: str, folder: str | Path, dest: str | None = None,
           jump: str | None = None) -> Exported:
    """What a collaborator needs to connect: their key (if ptdesk made it), ssh_config, known_hosts.

    The files are written to `folder` here; ssh_config names them where the person will keep the
    folder on their own machine (`destination(name, dest)`, ~/.ssh/ptdesk-NAME by default).
    It has one Host entry per experiment they may reach, pinned to the host key in the known_hosts
    next to it (under the experiment's HostKeyAlias), through `jump` (ProxyJump user@bastion[:port])
    when the workstation is reached through a jump host. While a rotation is unfinished somewhere,
    the previous key is included too and offered (after the new one) for those experiments only.
    """
    record = collaborator(site, name)
    remote = destination(name, dest)
    jump = jump_host(jump)
    out = _private_folder(Path(folder).expanduser().absolute(), create=False)
    reachable = [(g, e) for g in site.store.grants(collaborator=name)
                 if (e := site.store.experiment(g.experiment)) is not None and e.port and e.host_public_key]
    if not reachable:  # an empty config would look like success and connect nowhere
        raise PtdeskError(f"{name} has no access to any experiment yet, so there is nothing to export.",
                          f"Grant some first: ptdesk grant {name} EXPERIMENT")
    out = _private_folder(out)
    config, written = site.config, []
    if record.identity_file:
        pair = [(PRIVATE, Path(record.identity_file))]
        if record.previous_fingerprint and (source := key_dir(config, name) / PREVIOUS).exists():
            pair.append((PREVIOUS, source))
        for stem, source in pair:
            private_files.write_secret(out / stem, source.read_bytes(), 0o600)
            written.append(out / stem)
    private_files.write_secret(out / f"{PRIVATE}.pub", (record.public_key + "\n").encode(), 0o644)
    written.append(out / f"{PRIVATE}.pub")
    entries, known = [f"# ptdesk access for {name} ({record.fingerprint})\n\n"], []
    for grant_, exp in reachable:
        known.append(ssh_config.known_hosts_text(exp.name, exp.host_public_key))
        identities: tuple[str, ...] = ()
        if record.identity_file:
            identities = (_config_path(remote, PRIVATE),)
            if record.previous_fingerprint in grant_.installed and (out / PREVIOUS).exists():
                identities += (_config_path(remote, PREVIOUS),)
        entries.append(ssh_config.render_host(ssh_config.HostEntry(
            alias=exp.name, hostname=config.connect_host, port=exp.port, user=name,  # their own account
            identity_files=identities, known_hosts=_config_path(remote, "known_hosts"),
            host_key_alias=ssh_config.host_key_alias(exp.name), proxy_jump=jump,
            note=None if identities else f"IdentityFile: your own private key for {record.fingerprint}")))
    private_files.write_secret(out / "ssh_config", "".join(entries).encode(), 0o600)
    private_files.write_secret(out / "known_hosts", "".join(known).encode(), 0o644)
    written += [out / "ssh_config", out / "known_hosts"]
    site.store.audit("collab-export", name, {"fingerprint": record.fingerprint, "folder": str(out),
                                             "dest": remote, "jump": jump})
    return Exported(tuple(written), tuple(e.name for _, e in reachable), _reach_warnings(config, name, jump))


def _reach_warnings(config: Config, name: str, jump: str | None) -> tuple[str, ...]:
    """A config that names this machine's loopback reaches nothing from the person's machine."""
    if jump or not ipaddress.ip_address(config.bind_address).is_loopback:
        return ()
    return (f"bind_address is {config.bind_address}, so the ssh_config says HostName {config.connect_host}: "
            f"{name} can only connect from this machine. Set bind_address to an address {name} reaches, or "
            "export with --jump USER@THIS-HOST to go through this machine's own sshd.",)
