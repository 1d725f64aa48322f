"""What a VS Code Server build is, and where VS Code Remote-SSH looks for one (no engine here).

Checked against VS Code's own source and the Remote-SSH install scripts (Dec 2026):
- The build a client of commit C needs is `vscode-server-linux-x64.tar.gz` from
  https://update.code.visualstudio.com/commit:C/server-linux-x64/stable : one top folder
  `vscode-server-linux-x64/` holding `product.json` (its "commit" is C, "quality" "stable",
  "serverDataFolderName" ".vscode-server"), `node`, `bin/code-server` (a sh script that runs
  `"$ROOT/node" "$ROOT/out/server-main.js"`, ROOT found with `readlink -f "$0"`: it runs from
  wherever a link to it leads) and `out/server-main.js`.
- The `code` CLI (microsoft/vscode cli/src/state.rs, cli/src/tunnels/paths.rs) keeps servers in
  `<cli data dir>/servers/<Quality>-<commit>/server/bin/code-server`, writing `log.txt` and
  `pid.txt` next to `server/` (so `Stable-C/` must stay writable) and `lru.json` in `servers/`.
  Remote-SSH runs it with the cli data dir `~/.vscode-server/cli`, so it looks in
  `~/.vscode-server/cli/servers/Stable-C/server/` (its log: "Checking …/cli/servers/Stable-C/log.txt
  and pid.txt for a running server"); it downloads only when `bin/code-server` is missing there.
- Older Remote-SSH versions (and the install script without the exec server) use the legacy
  `~/.vscode-server/bin/C/` (the tarball's contents, `bin/code-server` inside), and check
  `[ -f "$SERVER_DIR/node" ]` and `bin/code-server` after unpacking.
- Everything else under `~/.vscode-server` (data/, extensions/, `.C.log`, `.C.token`, `.C.pid`,
  `code-C`, the CLI) is written at run time: the folder itself cannot be a read-only mount.

So ptdesk mounts the cache read-only beside the homes (MOUNT) and links each cached build into every
person's `~/.vscode-server` at both paths when they log in (SSHRC): the links are the only thing in
the home, never over a folder the person has.
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ptdesk.errors import InvalidInput, PtdeskError

COMMIT = re.compile(r"[0-9a-f]{40}")
TOP = "vscode-server-linux-x64"
DOWNLOAD_URL = "https://update.code.visualstudio.com/commit:{commit}/server-linux-x64/stable"
QUALITY = "Stable"  # the CLI's folder name for quality "stable" (Quality::Stable's capitalized name)
DATA_FOLDER = ".vscode-server"  # product.json's serverDataFolderName for Microsoft's VS Code
MOUNT = "/opt/ptdesk/vscode-server"  # the cache, read-only, in every SSH experiment that has it
# Paths inside the build that Remote-SSH and the server's launcher need: a build without one is not one.
REQUIRED = ("product.json", "node", "bin/code-server", "out/server-main.js")
EXECUTABLE = ("node", "bin/code-server")
PRODUCT_LIMIT = 1 << 20


def servers_folder(commit: str) -> str:
    """Where a build lives, relative to the cache and to ~/.vscode-server alike."""
    return f"cli/servers/{QUALITY}-{commit}"


def is_commit(text: str) -> bool:
    return COMMIT.fullmatch(text) is not None


def check_commit(commit: str, hint: str = "Copy it from Help > About in VS Code (the line Commit), "
                                           "or the second line of `code --version`.") -> str:
    if not is_commit(commit):
        raise InvalidInput(f"{commit!r} is not a VS Code commit id (40 hexadecimal digits).", hint)
    return commit


# /etc/ssh/sshrc: sshd runs it (as the person, /bin/sh, before the session's command) for every
# session, whatever PermitUserRC says (that option is for ~/.ssh/rc only). Its output would reach
# the client (and break sftp), so it prints nothing. It links what the cache holds now, so builds
# added after the experiment started are there at the next login; links whose build was removed go.
SSHRC = f"""# Written by ptdesk: link the VS Code Server builds cached on this workstation
# ({MOUNT}, read-only) into ~/.vscode-server, where VS Code Remote-SSH looks (ptdesk vscode).
(
cache={MOUNT}/cli/servers
data="$HOME/{DATA_FOLDER}"
[ -n "$HOME" ] && [ -d "$HOME" ] || exit 0
for link in "$data"/cli/servers/{QUALITY}-*/server "$data"/bin/*; do
    if [ -L "$link" ] && [ ! -e "$link" ]; then
        case "$(readlink "$link")" in {MOUNT}/*) rm -f "$link"; rmdir "${{link%/server}}" ;; esac
    fi
done
[ -d "$cache" ] || exit 0
for build in "$cache"/{QUALITY}-*; do
    [ -x "$build/server/bin/code-server" ] || continue
    name=${{build##*/}}; commit=${{name#{QUALITY}-}}
    if [ ! -e "$data/cli/servers/$name/server" ] && [ ! -L "$data/cli/servers/$name/server" ]; then
        mkdir -p "$data/cli/servers/$name" && ln -s "$build/server" "$data/cli/servers/$name/server"
    fi
    if [ ! -e "$data/bin/$commit" ] && [ ! -L "$data/bin/$commit" ]; then
        mkdir -p "$data/bin" && ln -s "$build/server" "$data/bin/$commit"
    fi
done
) </dev/null >/dev/null 2>&1
""".encode()


@dataclass(frozen=True)
class ServerBuild:
    """A VS Code Server tarball that passed every check."""

    path: Path
    commit: str
    version: str
    size: int  # bytes once unpacked


def inspect_tarball(path: Path, commit: str | None = None) -> ServerBuild:
    """Read the whole tarball (a truncated or damaged one fails here, before anything is placed)
    and check it is a VS Code Server build for Linux x64 of `commit` (when given)."""
    if commit is not None:
        check_commit(commit)
    product, size, found = None, 0, set()
    with _reading(path) as tar:
        for member in _members(tar, path):
            inner = _inner_name(member.name, path)
            size += member.size
            if inner in REQUIRED and member.isfile():
                found.add(inner)
                if inner in EXECUTABLE and not member.mode & 0o100:
                    raise PtdeskError(f"{path} has {TOP}/{inner} without its executable bit: not a server build.")
            if inner == "product.json" and member.isfile():
                if member.size > PRODUCT_LIMIT:
                    raise PtdeskError(f"{path} has a product.json of {member.size} bytes: not a server build.")
                product = _read(tar, member, path)
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise PtdeskError(f"{path} is not a VS Code Server build: {TOP}/{missing[0]} is missing.",
                          "Bring vscode-server-linux-x64.tar.gz (ptdesk vscode settings says where to get it).")
    return ServerBuild(path, *_check_product(product or b"", path, commit), size)


def _check_product(data: bytes, path: Path, claimed: str | None) -> tuple[str, str]:
    try:
        product = json.loads(data)
    except ValueError:
        raise PtdeskError(f"{path} has a product.json that is not JSON: not a server build.") from None
    if not isinstance(product, dict) or not is_commit(str(product.get("commit", ""))):
        raise PtdeskError(f"{path} has no commit id in its product.json: not a VS Code Server build.")
    found = str(product["commit"])
    if claimed is not None and found != claimed:
        raise PtdeskError(f"{path} is the VS Code Server of commit {found}, not {claimed}.",
                          "Bring the build of the commit your VS Code shows in Help > About.")
    quality, folder = product.get("quality"), product.get("serverDataFolderName", DATA_FOLDER)
    if quality != "stable" or folder != DATA_FOLDER:
        raise PtdeskError(f"{path} is a {quality or 'unnamed'} build for {folder}, not Microsoft's stable VS Code.",
                          "ptdesk caches the stable VS Code Server (Insiders and other editors look elsewhere).")
    return found, str(product.get("version") or "?")


def repack(build: ServerBuild, prefix: str, out: IO[bytes]) -> None:
    """Write the build as an uncompressed tar under `prefix/` (instead of the tarball's top
    folder): owned by root, readable by everyone, writable by nobody else."""
    with _reading(build.path) as tar, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member in _members(tar, build.path):
            inner = _inner_name(member.name, build.path)
            copy = tarfile.TarInfo(posixpath.join(prefix, inner) if inner else prefix)
            copy.type, copy.size, copy.mtime, copy.linkname = member.type, member.size, member.mtime, member.linkname
            if member.islnk():
                copy.linkname = posixpath.join(prefix, _inner_name(member.linkname, build.path))
            copy.uid = copy.gid = 0
            copy.uname = copy.gname = "root"
            copy.mode = 0o755 if member.isdir() or member.mode & 0o111 else 0o644
            target.addfile(copy, tar.extractfile(member) if member.isfile() else None)
    out.seek(0)


class _reading:
    """tarfile.open for reading, every failure one sentence about the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tarfile.TarFile:
        try:
            self.tar = tarfile.open(self.path, mode="r:*")
        except FileNotFoundError:
            raise PtdeskError(f"There is no file {self.path}.",
                              "Give the path of the vscode-server-linux-x64.tar.gz you downloaded.") from None
        except IsADirectoryError:
            raise PtdeskError(f"{self.path} is a folder, not a tarball.",
                              "Give the vscode-server-linux-x64.tar.gz file itself, as downloaded.") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            raise PtdeskError(f"{self.path} is not a tar archive (nor a compressed one).",
                              "Bring vscode-server-linux-x64.tar.gz as downloaded.") from None
        return self.tar

    def __exit__(self, *exc: object) -> None:
        self.tar.close()


def _members(tar: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """Every member, read to the end: a cut-off download fails here, not half-way through placing."""
    try:
        while (member := tar.next()) is not None:
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise PtdeskError(f"{path} holds {member.name}, a device or pipe: not a server build.")
            if member.issym() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")
                                   and not _stays_inside(member)):
                raise PtdeskError(f"{path} holds a link {member.name} -> {member.linkname} leading out of the build.")
            yield member
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PtdeskError(f"{path} is truncated or damaged ({exc or type(exc).__name__}).",
                          "Download it again (its size should match the download's).") from None


def _stays_inside(member: tarfile.TarInfo) -> bool:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
    return resolved == TOP or resolved.startswith(TOP + "/")


def _inner_name(name: str, path: Path) -> str:
    """The path inside the build's top folder; anything outside it is refused."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or parts[0] != TOP or ".." in parts:
        raise PtdeskError(f"{path} holds {name!r} outside {TOP}/: not a VS Code Server build for Linux x64.",
                          "Bring vscode-server-linux-x64.tar.gz (ptdesk vscode settings says where to get it).")
    return "/".join(parts[1:])


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read(PRODUCT_LIMIT)
