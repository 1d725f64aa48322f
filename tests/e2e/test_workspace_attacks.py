"""Workspaces an attacker would hand an experiment: system trees, secrets folders, other people's
folders, links planted under a predictable default name, and a folder swapped for a link between
stop and start. Each is refused in one line (exit 2) with nothing left behind."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Ptdesk

from ptdesk.core.engine.client import Engine

MALLORY = 4242  # another local user of the box


def as_user(uid: int, action: Callable[[], None]) -> None:
    """Run `action` in a child process as `uid`: what another local user can do, nothing more."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            action()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the attack as uid {uid} failed"


@pytest.fixture
def box() -> Iterator[Path]:
    """A folder other users can reach (pytest's tmp_path is 0700 root's): /tmp/ptdesk-ws-XXXX, 0755."""
    folder = Path(tempfile.mkdtemp(prefix="ptdesk-ws-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def refused(cli: Ptdesk, engine: Engine, name: str, *args: object, extra_env: dict[str, str] | None = None) -> str:
    rc, _, err = cli.run("new", "ssh", "--name", name, *args, "--json", extra_env=extra_env)
    assert rc == 2, (rc, err)
    lines = cli.fails("new", "ssh", "--name", name, *args, "--json", extra_env=extra_env)
    cli.assert_nothing_left(engine, name)
    return lines[0]


SYSTEM = [p for p in ("/proc", "/sys", "/dev", "/etc", "/boot", "/run", "/var/run", "/usr", "/var/lib/docker",
                      "/proc/self/root", "/sys/fs/cgroup", "/dev/shm") if Path(p).exists()]


@pytest.mark.parametrize("folder", SYSTEM)
def test_system_trees_are_refused(cli: Ptdesk, engine: Engine, folder: str) -> None:
    line = refused(cli, engine, "sys", "--workspace", folder)
    assert "cannot be a workspace" in line


@pytest.mark.parametrize("which", [".ssh", ".gnupg", ".aws", "home"])
def test_secrets_folders_and_homes_are_refused(cli: Ptdesk, engine: Engine, tmp_path: Path, which: str) -> None:
    home = tmp_path / "home"
    secrets = home / which if which != "home" else home
    (secrets / "inner").mkdir(parents=True)
    for folder in (secrets, secrets / "inner") if which != "home" else (secrets,):
        line = refused(cli, engine, "secrets", "--workspace", folder, extra_env={"HOME": str(home)})
        assert "cannot be a workspace" in line
        assert "credentials" in line or "home folder" in line


def test_ptdesk_home_is_refused(cli: Ptdesk, engine: Engine) -> None:
    (cli.home / "keys").mkdir(parents=True, exist_ok=True)
    assert "keys and tokens" in refused(cli, engine, "home", "--workspace", cli.home / "keys")


def test_a_folder_someone_else_owns_is_refused(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, MALLORY, MALLORY)
    assert "belongs to uid 4242" in refused(cli, engine, "theirs", "--workspace", theirs)


def test_a_folder_others_can_swap_is_refused(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    shared = tmp_path / "open"
    (shared / "proj").mkdir(parents=True)
    shared.chmod(0o777)  # writable by all, not sticky: anyone may rename proj away
    line = refused(cli, engine, "open", "--workspace", shared / "proj")
    assert "can be written by others" in line


def _shared_root(cli: Ptdesk, box: Path, mode: int = 0o1777) -> Path:
    """A workspace_root every user can write, like the README's /data/experiments."""
    root = box / "shared"
    root.mkdir()
    root.chmod(mode)
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(f'workspace_root = "{root}"\n')
    return root


def test_a_default_workspace_planted_as_a_link_is_refused(cli: Ptdesk, engine: Engine, box: Path) -> None:
    root = _shared_root(cli, box)
    (cli.home / "keys").mkdir(parents=True, exist_ok=True)
    as_user(MALLORY, lambda: os.symlink(cli.home, root / "planted"))
    line = refused(cli, engine, "planted")
    assert "symbolic link" in line
    assert (root / "planted").is_symlink()  # neither followed nor removed


def test_a_default_workspace_planted_as_their_folder_is_refused(cli: Ptdesk, engine: Engine,
                                                                box: Path) -> None:
    root = _shared_root(cli, box)
    as_user(MALLORY, lambda: os.mkdir(root / "theirs"))
    assert "belongs to uid 4242" in refused(cli, engine, "theirs")
    assert (root / "theirs").is_dir()


def test_a_default_workspace_root_others_can_write_is_refused(cli: Ptdesk, engine: Engine,
                                                              box: Path) -> None:
    root = _shared_root(cli, box, mode=0o777)
    assert "can be written by others" in refused(cli, engine, "loose")
    assert not (root / "loose").exists()


def test_a_workspace_swapped_for_a_link_between_stop_and_start_is_refused(
        cli: Ptdesk, engine: Engine, box: Path) -> None:
    parent = box / "projects"
    (parent / "proj").mkdir(parents=True)
    (box / "link").symlink_to(parent / "proj")
    out = cli.new("ssh", "--name", "swap", "--workspace", box / "link")
    # The resolved folder is bound and recorded, never the link as typed.
    mounts = {m["Destination"]: m["Source"] for m in engine.inspect(out["id"])["Mounts"]}
    assert mounts["/workspace"] == str(parent / "proj")
    assert engine.inspect(out["id"])["Config"]["Labels"]["ptdesk.workspace"] == str(parent / "proj")
    cli.ok("stop", "swap")

    parent.chmod(0o777)  # later made writable by everyone, and another user swaps proj
    (cli.home / "keys").mkdir(parents=True, exist_ok=True)

    def swap() -> None:
        os.rename(parent / "proj", parent / "proj.old")
        os.symlink(cli.home, parent / "proj")

    as_user(MALLORY, swap)
    lines = cli.fails("start", "swap")
    assert "symbolic link" in lines[0] and "swapped" in lines[0]
    assert not engine.is_running(out["id"])

    # Put back, but the parent is still writable by all: still refused, saying why.
    os.unlink(parent / "proj")
    os.rename(parent / "proj.old", parent / "proj")
    assert "can be written by others" in cli.fails("start", "swap")[0]
    parent.chmod(0o755)
    cli.ok("start", "swap")
    assert engine.is_running(out["id"])
    assert stat.S_ISDIR(os.lstat(parent / "proj").st_mode)
