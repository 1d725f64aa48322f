"""The VS Code Server tarball checks, the repacking, the space check and the login's linking
script, without an engine (the end-to-end side: tests/e2e/test_vscode_cache.py)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from ptdesk.core.vscode.cache import SPARE, check_space
from ptdesk.core.vscode.layout import MOUNT, SSHRC, inspect_tarball, repack
from ptdesk.errors import PtdeskError
from tests.support.vscode_support import server_tarball

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_build_is_read_whole_and_its_commit_and_size_known(tmp_path: Path) -> None:
    build = inspect_tarball(server_tarball(tmp_path / "s.tar.gz", COMMIT, padding=4096), COMMIT)
    assert (build.commit, build.version) == (COMMIT, "1.107.0")
    assert build.size > 4096


@pytest.mark.parametrize(("commit", "sentence"), [
    ("1234", "'1234' is not a VS Code commit id"),
    ("f" * 40, f"is the VS Code Server of commit {COMMIT}, not {'f' * 40}."),
])
def test_the_claimed_commit_must_be_the_builds(tmp_path: Path, commit: str, sentence: str) -> None:
    with pytest.raises(PtdeskError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        inspect_tarball(server_tarball(tmp_path / "s.tar.gz", COMMIT), commit)


def test_a_tarball_of_another_layout_or_with_links_out_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PtdeskError, match="outside vscode-server-linux-x64/"):
        inspect_tarball(server_tarball(tmp_path / "a.tar.gz", COMMIT, top="vscode-reh-web-linux-x64"))
    escaping = tmp_path / "b.tar.gz"
    server_tarball(escaping, COMMIT)
    with tarfile.open(escaping) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    link = tarfile.TarInfo("vscode-server-linux-x64/bin/x")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/shadow"
    with tarfile.open(escaping, "w:gz") as tar:
        for member, data in [*members, (link, None)]:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(PtdeskError, match="leading out of the build"):
        inspect_tarball(escaping)


def test_repacked_build_is_roots_and_lies_under_its_staging_name(tmp_path: Path) -> None:
    build = inspect_tarball(server_tarball(tmp_path / "s.tar.gz", COMMIT))
    out = io.BytesIO()
    repack(build, ".incoming/t/server", out)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert ".incoming/t/server/bin/code-server" in members and ".incoming/t/server/product.json" in members
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert members[".incoming/t/server/node"].mode == 0o755
    assert members[".incoming/t/server/product.json"].mode == 0o644


def test_a_workstation_that_cannot_hold_the_build_is_told_in_one_sentence() -> None:
    check_space("box", 200 * 1024**2 + SPARE, 200 * 1024**2)  # fits, just
    with pytest.raises(PtdeskError, match=r"^Workstation box has 300 MiB free where its VS Code Server cache "
                                          r"lives, and this build needs 200 MiB") as caught:
        check_space("box", 300 * 1024**2, 200 * 1024**2)  # the build fits, the room kept free does not
    assert "ptdesk vscode rm COMMIT" in (caught.value.hint or "")


def test_the_login_script_links_each_cached_build_silently_and_drops_links_to_removed_ones(tmp_path: Path) -> None:
    cache, home = tmp_path / "cache", tmp_path / "home"
    server = cache / "cli/servers" / f"Stable-{COMMIT}" / "server"
    (server / "bin").mkdir(parents=True)
    (server / "bin/code-server").write_text("#!/bin/sh\n")
    (server / "bin/code-server").chmod(0o755)
    home.mkdir()
    script = SSHRC.decode().replace(MOUNT, str(cache))

    def login() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", script], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=10)

    for _ in range(2):  # every login; the second finds the links there
        result = login()
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (home / f".vscode-server/cli/servers/Stable-{COMMIT}/server").resolve() == server
    assert (home / f".vscode-server/bin/{COMMIT}").resolve() == server
    mine = home / ".vscode-server/bin" / ("a" * 40)
    mine.mkdir()  # a build the person installed themselves: never touched
    (server / "bin/code-server").unlink()
    (server / "bin").rmdir()
    server.rmdir()
    assert login().stdout == ""
    assert not (home / f".vscode-server/cli/servers/Stable-{COMMIT}").exists()
    assert not (home / f".vscode-server/bin/{COMMIT}").is_symlink()
    assert mine.is_dir()


def test_a_download_mirror_that_is_not_an_http_url_is_one_sentence() -> None:
    """PTDESK_VSCODE_DOWNLOAD=notaurl made `ptdesk vscode fetch` end in urllib's traceback."""
    from ptdesk.core.vscode.fetch import download_url

    assert download_url(COMMIT, {"PTDESK_VSCODE_DOWNLOAD": "http://m/{commit}.tgz"}) == f"http://m/{COMMIT}.tgz"
    assert download_url(COMMIT, {}).startswith("https://update.code.visualstudio.com/")
    with pytest.raises(PtdeskError) as refused:
        download_url(COMMIT, {"PTDESK_VSCODE_DOWNLOAD": "notaurl"})
    assert refused.value.message == "PTDESK_VSCODE_DOWNLOAD 'notaurl' is not an http(s) URL."


def test_a_missing_file_or_a_folder_says_what_to_give_instead(tmp_path: Path) -> None:
    for path, said in ((tmp_path / "nope.tar.gz", "There is no file"), (tmp_path, "is a folder, not a tarball")):
        with pytest.raises(PtdeskError) as refused:
            inspect_tarball(path)
        assert said in refused.value.message and "vscode-server-linux-x64.tar.gz" in (refused.value.hint or "")
