"""What sharing a workspace with a collaborator does to it on the host, and what revoking undoes.

eve, a collaborator with her own account, plants setuid and setgid copies of bash in the shared
workspace: they never carry a host group with a meaning (the share group's gid is one no host group
has), and the next start makes them plain, saying so in the container's log. The owner's files made
with umask 077 while the workspace is shared give `other` nothing. Revoking the last collaborator
takes away what the first grant set: the default ACL, the setgid bit and group write, the group.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.access.accounts import share_gid
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from tests.support.accounts_support import owner_ssh, person

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk

pytestmark = pytest.mark.engine
ACL_DEFAULT = "system.posix_acl_default"


@pytest.fixture(scope="module")
def shared(module_desk: Ptdesk, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    box = module_desk.new("ssh", "--name", "shared", "--cpus", "1")
    ws = Workstation(module_desk.config)
    try:
        workspace = Path(ws.store.experiment("shared").workspace)
    finally:
        ws.close()
    before = workspace.stat()
    assert before.st_gid == module_desk.config.gid and not before.st_mode & stat.S_ISGID
    person(module_desk, "eve", tmp_path_factory.mktemp("people"), "shared")
    return box, workspace


def test_the_owners_umask_077_files_stay_private_after_a_grant(module_desk: Ptdesk, shared: tuple[dict, Path],
                                                               tmp_path: Path) -> None:
    box, workspace = shared
    made = owner_ssh(module_desk, box, "umask 077; echo secret > /workspace/owner-notes", tmp_path)
    assert made.returncode == 0, made.stderr
    mode = (workspace / "owner-notes").stat().st_mode
    assert mode & 0o007 == 0, oct(mode)  # `other` on the host gets nothing
    assert os.getxattr(workspace, ACL_DEFAULT)  # the workspace is shared through a default ACL


def test_a_collaborators_setgid_file_carries_no_host_group_and_is_made_plain_at_start(
        module_desk: Ptdesk, shared: tuple[dict, Path], engine: Engine,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    box, workspace = shared
    eve = person(module_desk, "eve2", tmp_path_factory.mktemp("more"), "shared")
    planted = eve.ssh("shared", "cp /bin/bash /workspace/.x && chmod 2755 /workspace/.x && "
                                "cp /bin/bash '/workspace/a b' && chmod 4755 '/workspace/a b'")
    assert planted.returncode == 0, planted.stderr
    x = (workspace / ".x").stat()
    assert x.st_mode & stat.S_ISGID  # eve may set it ...
    assert x.st_gid == share_gid(module_desk.config.uid) != module_desk.config.gid
    with pytest.raises(KeyError):  # ... but its group is none the host knows
        grp.getgrgid(x.st_gid)
    module_desk.ok("stop", "shared")
    module_desk.ok("start", "shared")
    for name in (".x", "a b"):
        assert (workspace / name).stat().st_mode & (stat.S_ISUID | stat.S_ISGID) == 0, name
    logs = engine.api.logs(module_desk.listed()["shared"]["id"]).decode()
    assert "removed the setuid/setgid bits of /workspace/.x" in logs, logs
    module_desk.ok("collab", "rm", "eve2")


def test_revoking_the_last_collaborator_undoes_what_the_first_grant_set(module_desk: Ptdesk,
                                                                         shared: tuple[dict, Path]) -> None:
    _, workspace = shared
    assert workspace.stat().st_mode & stat.S_ISGID
    module_desk.ok("revoke", "eve", "shared")
    after = workspace.stat()
    assert after.st_mode & (stat.S_ISGID | stat.S_IWGRP) == 0, oct(after.st_mode)
    assert after.st_gid == module_desk.config.gid
    with pytest.raises(OSError):  # no default ACL left
        os.getxattr(workspace, ACL_DEFAULT)
