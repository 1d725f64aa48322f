"""The workspace rule on folders alone (no engine): what it allows, and the default folder made
safely. The attacks themselves run end to end in tests/e2e/test_workspace_attacks.py."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.host import workspace
from ptdesk.errors import InvalidInput, NotFound, PtdeskError


@pytest.fixture
def config(tmp_path: Path):
    return load_config({"PTDESK_HOME": str(tmp_path / "home")})


def test_an_own_project_folder_is_allowed_and_given_back_resolved(config, tmp_path: Path) -> None:
    project = tmp_path / "projects" / "p1"
    project.mkdir(parents=True)
    (tmp_path / "via").symlink_to(project)
    assert workspace.check(config, tmp_path / "via") == project
    with pytest.raises(InvalidInput, match="swapped"):  # a link in a recorded path: swapped since
        workspace.check(config, tmp_path / "via", recorded=True)


def test_a_sticky_shared_parent_is_allowed(config, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "mine").mkdir(parents=True)
    shared.chmod(0o1777)
    assert workspace.check(config, shared / "mine") == shared / "mine"


def test_missing_and_not_a_folder(config, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        workspace.check(config, tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInput, match="not a folder"):
        workspace.check(config, tmp_path / "file")


def test_the_engine_data_root_is_a_system_folder(config, tmp_path: Path) -> None:
    root = tmp_path / "docker-data"
    (root / "volumes").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="system folder"):
        workspace.check(config, root / "volumes", engine_root=root)


def test_the_default_workspace_is_made_private_and_resolved(config) -> None:
    path = config.workspaces / "exp1"
    real, made = workspace.make_default(config, path)
    assert made and real == path.resolve() and real.is_dir() and not real.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) & 0o027 == 0  # 0750 at most
    again, made_again = workspace.make_default(config, path)  # an existing own folder is reused
    assert again == real and not made_again


def test_a_default_workspace_refused_after_making_it_is_removed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """workspace_root inside a secrets folder: the folder made for the check does not stay."""
    home = tmp_path / "user"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))  # Path.home(): this test's own home, never the real one
    secrets = home / ".ssh" / "experiments"
    (tmp_path / "home2").mkdir()
    (tmp_path / "home2" / "config.toml").write_text(f'workspace_root = "{secrets}"\n')
    bad = load_config({"PTDESK_HOME": str(tmp_path / "home2")})
    with pytest.raises(PtdeskError, match="credentials"):
        workspace.make_default(bad, secrets / "exp")
    assert not (secrets / "exp").exists()
