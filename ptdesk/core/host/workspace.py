"""Which host folder an experiment may mount at /workspace, and making the default one safely.

Code in the container can read and write everything under /workspace, as the container user, for
as long as it runs; the engine resolves the folder again at every start. So the rule is an allow
rule, checked at launch and again before every start, on the resolved path (which is what is bound
and recorded):

- it is an existing directory owned by the launching user or by the configured uid;
- every folder above it belongs to root, that user or that uid, and none of them can be written by
  anyone else unless it is sticky (/tmp): otherwise another user could rename the workspace away
  and put a link to your files in its place between a check and the engine's next start;
- it is not in, and does not hold, a system tree (/proc, /sys, /dev, /etc, /boot, /run, /usr,
  /var/lib, the engine's data root, ...) or a kernel filesystem, wherever that is mounted;
- it is not in a secrets folder (~/.ssh, ~/.gnupg, ~/.aws, ~/.kube, ~/.docker, ...), does not hold a
  home folder (its start-up files run as that person on the host) and does not hold PTDESK_HOME's
  keys and tokens; a folder inside PTDESK_HOME is refused except the default workspaces.

A default workspace (`<workspace_root>/<name>`) is made with mkdir relative to the opened, checked
workspace_root, and an existing entry there is looked at without following it: a link or a folder
another user planted under a predictable name is refused, never used.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ptdesk.config import Config
from ptdesk.errors import InvalidInput, NotFound, PtdeskError

# System trees: the machine's configuration, devices, kernel interfaces, programs, services' data.
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run", "/var/run", "/usr", "/bin", "/sbin",
                "/lib", "/lib32", "/lib64", "/libx32", "/var/lib", "/var/log", "/var/cache", "/var/spool",
                "/var/mail", "/snap")
# Kernel filesystems: a bind of one hands over processes' memory, devices or kernel knobs.
KERNEL_FILESYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
                      "tracefs", "bpf", "mqueue", "hugetlbfs", "configfs", "fusectl", "pstore", "efivarfs",
                      "binfmt_misc", "autofs", "nsfs", "rpc_pipefs", "nfsd"}
# Folders in a home that hold credentials.
SECRET_FOLDERS = (".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gcloud", ".password-store",
                  ".local/share/keyrings", ".vnc")
MOUNT = "/workspace"  # where the experiment sees it
HINT = "Mount a project folder of your own, like ~/projects/NAME."


class _HasInfo(Protocol):
    def info(self, max_age: float = ...) -> dict: ...


INFO_AGE = 60.0  # seconds an engine's info may be reused for its data root (fixed while it runs)


def docker_root(engine: _HasInfo) -> Path | None:
    """The engine's data root (images, containers' filesystems, volumes), when it says."""
    try:
        root = engine.info(max_age=INFO_AGE).get("DockerRootDir")
    except PtdeskError:
        return None
    return Path(root) if root else None


def refused(path: Path, why: str, hint: str = HINT) -> InvalidInput:
    return InvalidInput(f"{path} cannot be a workspace: {why}.", hint)


def check(config: Config, path: Path | str, *, engine_root: Path | None = None, recorded: bool = False) -> Path:
    """The resolved workspace folder if the rule allows it; InvalidInput (or NotFound) otherwise.

    recorded=True: `path` is what a launch resolved and bound, checked again before a start; any
    link in it now means it was swapped since, and is refused.
    """
    typed = Path(path).expanduser().absolute()
    try:
        real = typed.resolve(strict=True)
        info = os.stat(real, follow_symlinks=False)
    except FileNotFoundError:
        raise NotFound(f"The workspace folder {typed} does not exist.",
                       "Create it first, or leave the workspace empty to get one named after the experiment.") from None
    except OSError as exc:
        raise refused(typed, f"it cannot be looked at ({exc.strerror})") from None
    if recorded and real != typed:
        raise refused(typed, f"it now leads to {real} through a symbolic link, so it was swapped since the "
                             "launch", "Check who can write the folders above it; then launch again with "
                                   "--workspace pointing at the real folder.")
    if not stat.S_ISDIR(info.st_mode):
        raise refused(typed, "it is not a folder")
    _check_place(config, typed, real, engine_root)
    _check_owner(config, typed, info)
    check_parents(config, real)
    return real


def _check_place(config: Config, typed: Path, real: Path, engine_root: Path | None) -> None:
    """Not a system tree or kernel filesystem, not a secrets folder, not holding a home or ptdesk's keys."""
    trees = {Path(t).resolve() for t in SYSTEM_TREES} | _socket_dirs()
    if engine_root is not None:
        trees.add(engine_root.resolve())
    if real == Path("/"):
        raise refused(typed, "it is the whole filesystem")
    for tree in sorted(trees):
        if _overlaps(real, tree):
            where = ("is the system folder" if real == tree else "holds the system folder" if tree.is_relative_to(real)
                     else "is inside the system folder")
            raise refused(typed, f"it {where} {tree}")
    for mount, fstype in _kernel_mounts():
        if _overlaps(real, mount):
            raise refused(typed, f"it is or holds a kernel filesystem ({fstype} at {mount})")
    home, workspaces = config.home.resolve(), config.workspaces.resolve()
    if home.is_relative_to(real) or (real.is_relative_to(home) and not real.is_relative_to(workspaces)):
        raise refused(typed, f"it holds ptdesk's keys and tokens ({home})",
                      "Mount a project folder inside it instead, like ~/projects/NAME.")
    for whose, folder in _homes():
        if folder.is_relative_to(real):
            raise refused(typed, f"it holds {whose} home folder {folder} (start-up files and keys)",
                          "Mount a project folder inside it instead, like ~/projects/NAME.")
        for secret in SECRET_FOLDERS:
            secrets = (folder / secret).resolve()  # ~/.ssh may be a link to the real folder
            if real.is_relative_to(secrets):
                raise refused(typed, f"it is inside {secrets}, which holds credentials")


def _check_owner(config: Config, typed: Path, info: os.stat_result) -> None:
    allowed = {os.getuid(), config.uid}
    if info.st_uid not in allowed:
        raise refused(typed, f"it belongs to {_user(info.st_uid)}, not to you",
                      f"Use a folder you own (uid {' or '.join(map(str, sorted(allowed)))}).")


def check_parents(config: Config, real: Path) -> None:
    """Nobody but root, the launching user and the configured uid can swap `real` (or a folder above
    it) for something else: each folder above it is theirs, and writable by nobody else unless sticky."""
    trusted = {0, os.getuid(), config.uid}
    for parent in real.parents:
        try:
            info = os.stat(parent, follow_symlinks=False)
        except OSError as exc:
            raise refused(real, f"{parent} cannot be looked at ({exc.strerror})") from None
        if stat.S_ISLNK(info.st_mode):
            raise refused(real, f"{parent} is a symbolic link")
        if info.st_uid not in trusted:
            raise refused(real, f"{parent} above it belongs to {_user(info.st_uid)}, who could swap it for a link",
                          "Use a folder whose parent folders belong to you or to root.")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            raise refused(real, f"{parent} above it can be written by others, who could swap it for a link",
                          f"Make it writable by its owner only (chmod go-w {parent}) or sticky (chmod +t {parent}).")


def make_default(config: Config, path: Path, *, engine_root: Path | None = None) -> tuple[Path, bool]:
    """The default workspace `path` (<workspace_root>/<name>), made if missing: (resolved, made).

    workspace_root may be shared (/data/experiments): the entry is made, or looked at, relative to
    the opened root folder without following a link, so a name planted there is refused.
    """
    root, name = path.parent, path.name
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o750)
        real_root = root.resolve(strict=True)
    except OSError as exc:  # a root-owned workspace_root, a file in the way, a full disk
        raise PtdeskError(f"The workspace folder {path} cannot be made ({exc.strerror or exc}).",
                          "Set workspace_root in config.toml to a folder you may write, or pass "
                          "--workspace DIR.") from None
    check_parents(config, real_root / name)
    made = False
    fd = os.open(real_root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            os.mkdir(name, 0o750, dir_fd=fd)
            made = True
            if os.getuid() == 0:  # made by root for someone else: hand it to the host user
                os.chown(name, config.uid, config.gid, dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PtdeskError(f"The workspace folder {path} cannot be made ({exc.strerror}).",
                              "Set workspace_root in config.toml to a folder you may write, or pass "
                              "--workspace DIR.") from None
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)
    try:
        if stat.S_ISLNK(info.st_mode):
            raise refused(path, f"it is a symbolic link someone placed in {root}; ptdesk never follows one",
                          "Remove it (or pick another --name), or pass --workspace DIR.")
        return check(config, real_root / name, engine_root=engine_root, recorded=True), made
    except PtdeskError:
        if made:
            os.rmdir(real_root / name)
        raise


def _overlaps(path: Path, tree: Path) -> bool:
    """`path` is `tree`, lies inside it, or holds it."""
    return path.is_relative_to(tree) or tree.is_relative_to(path)


def _socket_dirs() -> set[Path]:
    """The folder of the engine socket DOCKER_HOST names (the default one is under /run)."""
    host = os.environ.get("DOCKER_HOST", "")
    return {Path(host.removeprefix("unix://")).parent.resolve()} if host.startswith("unix://") else set()


def _kernel_mounts() -> Iterator[tuple[Path, str]]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        fstype = rest.split(" ", 1)[0]
        if len(parts) > 4 and fstype in KERNEL_FILESYSTEMS:
            # mountinfo escapes space, tab, newline and backslash as octal.
            yield Path(parts[4].encode().decode("unicode_escape")), fstype


def _homes() -> list[tuple[str, Path]]:
    """Home folders (whose, where) of $HOME and this machine's accounts, existing and not `/`."""
    found: dict[Path, str] = {}
    candidates = [("your", str(Path.home()))] + [(f"{p.pw_name}'s", p.pw_dir) for p in pwd.getpwall()]
    for user, folder in candidates:
        path = Path(folder)
        if folder and path.is_absolute() and path.is_dir() and path != Path("/"):
            found.setdefault(path.resolve(), user)
    return [(user, path) for path, user in found.items()]


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
