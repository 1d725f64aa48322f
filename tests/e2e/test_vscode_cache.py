"""The VS Code Server cache, end to end: the real CLI, engine, volume, sshd and OpenSSH client.

A stand-in build with the real tarball layout and product.json (tests/support/vscode_support.py;
a real build cannot be downloaded here) goes into the workstation's cache, and a real `ssh NAME`
login into an SSH experiment finds it where VS Code Remote-SSH looks
(`~/.vscode-server/cli/servers/Stable-COMMIT/server`, and the legacy `~/.vscode-server/bin/COMMIT`)
and runs its launcher from the read-only cache. Bad tarballs are refused, leaving nothing.
Tests run in file order: the first ones see a workstation without a cache.
"""

from __future__ import annotations

import http.server
import io
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pynvml
import pytest
from rich.console import Console
from textual.widgets import Static

from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.details import Details
from tests.support.helpers import SSH_IMAGE, remove_instance_containers
from tests.support.tuihelpers import nvml_scenarios, settle
from tests.support.vscode_support import server_tarball, truncated
from tests.support.workday_support import free_port, ssh

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"  # fetched in the fetch test
ASKED = "fedcba9876543210fedcba9876543210fedcba98"  # a client's commit nobody cached
MOUNT = "/opt/ptdesk/vscode-server"
SERVER = f"{MOUNT}/cli/servers/Stable-{COMMIT}/server"


@pytest.fixture(scope="module")
def volume(module_desk: Ptdesk, engine: Engine) -> Iterator[str]:
    name = f"ptdesk-{module_desk.instance}-vscode-server"
    yield name
    remove_instance_containers(engine, module_desk.instance)  # the experiments mounting it first
    engine.remove_volume(name)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vscode")
    good = server_tarball(folder / "vscode-server-linux-x64.tar.gz", COMMIT, padding=1 << 20)
    truncated(good, folder / "cut.tar.gz")
    server_tarball(folder / "other.tar.gz", OTHER)
    server_tarball(folder / "no-node.tar.gz", COMMIT, drop="node")
    server_tarball(folder / "insiders.tar.gz", COMMIT, product_changes={"quality": "insider"})
    (folder / "notes.txt").write_text("not a tarball\n")
    return folder


def cache_listing(engine: Engine, volume: str) -> str:
    """Everything in the cache volume (hidden staging folders included), read by a helper."""
    rc, out = engine.run_helper(SSH_IMAGE, "cd /cache && find . | sort",
                                {volume: {"bind": "/cache", "mode": "ro"}}, {})
    assert rc == 0, out
    return out


def test_bad_tarballs_are_refused_in_one_sentence_and_leave_no_cache(
        module_desk: Ptdesk, builds: Path, engine: Engine, volume: str) -> None:
    said = {
        "cut.tar.gz": "is truncated or damaged",
        "notes.txt": "is not a tar archive",
        "no-node.tar.gz": "is not a VS Code Server build: vscode-server-linux-x64/node is missing",
        "insiders.tar.gz": "not Microsoft's stable VS Code",
    }
    for name, sentence in said.items():
        lines = module_desk.fails("vscode", "add", builds / name)
        assert sentence in lines[0], lines
    lines = module_desk.fails("vscode", "add", builds / "vscode-server-linux-x64.tar.gz", "--commit", OTHER)
    assert f"is the VS Code Server of commit {COMMIT}, not {OTHER}" in lines[0], lines
    assert engine.volume(volume) is None  # nothing made for a build that was refused


def test_a_cached_build_is_where_remote_ssh_looks_in_a_real_ssh_login(
        module_desk: Ptdesk, builds: Path, volume: str) -> None:
    out = module_desk.ok("vscode", "add", builds / "vscode-server-linux-x64.tar.gz", "--commit", COMMIT)
    assert f"({COMMIT}) is cached on local" in out
    module_desk.new("ssh", "--name", "code", "--cpus", "1")
    config = module_desk.home / "ssh" / "config"
    # What Remote-SSH's install script checks before it would download: the launcher of its commit.
    script = (f"test -x ~/.vscode-server/cli/servers/Stable-{COMMIT}/server/bin/code-server && "
              f"readlink ~/.vscode-server/cli/servers/Stable-{COMMIT}/server ~/.vscode-server/bin/{COMMIT} && "
              f"~/.vscode-server/cli/servers/Stable-{COMMIT}/server/bin/code-server --start-server && "
              f"~/.vscode-server/bin/{COMMIT}/bin/code-server --version && "
              f"touch ~/.vscode-server/cli/servers/Stable-{COMMIT}/log.txt && "
              f"{{ touch {SERVER}/x 2>/dev/null && echo WRITABLE || echo read-only; }}")
    result = ssh(config, "code", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        SERVER, SERVER,  # both layouts lead into the cache
        f"stand-in node ran {SERVER}/out/server-main.js with: --start-server",  # the launcher ran from there
        f"stand-in node ran {SERVER}/out/server-main.js with: --version",
        "read-only",  # nobody in an experiment can change a build the whole box uses
    ], result.stdout
    # The login's linking prints nothing: sftp (which VS Code uses for its files) still works.
    sftp = subprocess.run(["sftp", "-F", str(config), "-o", "BatchMode=yes", "-b", "-", "code"],
                          input="ls /workspace\n", capture_output=True, text=True, timeout=30)
    assert sftp.returncode == 0, sftp.stderr
    found = module_desk.json("vscode", "status")
    assert [c["commit"] for c in found["cached"]] == [COMMIT]
    assert found["mounted_in"] == ["code"] and found["missing"] == []


def test_a_bad_tarball_leaves_the_cache_as_it_was(module_desk: Ptdesk, builds: Path, engine: Engine,
                                                 volume: str) -> None:
    before = cache_listing(engine, volume)
    module_desk.fails("vscode", "add", builds / "cut.tar.gz", "--commit", COMMIT)
    assert cache_listing(engine, volume) == before
    assert "already" not in module_desk.ok("vscode", "add", builds / "vscode-server-linux-x64.tar.gz")  # idempotent


def test_status_names_the_commit_a_client_asked_for_and_did_not_find(module_desk: Ptdesk) -> None:
    config = module_desk.home / "ssh" / "config"
    # What an offline Remote-SSH attempt leaves in the home: its log and the folder it made.
    result = ssh(config, "code", f"cd ~/.vscode-server && touch .{ASKED}.log && mkdir -p cli/servers/Stable-{ASKED}")
    assert result.returncode == 0, result.stderr
    found = module_desk.json("vscode", "status")
    assert found["missing"] == [{"commit": ASKED, "experiments": ["code"]}]
    assert f"Missing: {ASKED}, asked for by a client in code." in module_desk.ok("vscode", "status")


async def test_the_dashboard_details_say_which_builds_the_experiment_sees(module_desk: Ptdesk,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name, function in nvml_scenarios.no_driver().functions().items():  # NVML: the only thing replaced
        monkeypatch.setattr(pynvml, name, function)
    ws = Workstation(module_desk.config)
    app = PtdeskApp(ws, watch_events=False)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            code = await settle(pilot, lambda: next((e for e in app.main.table.experiments.values()
                                                     if e.name == "code"), None), message="the experiment's row")
            app.main.table.move_cursor(row=app.main.table.get_row_index(code.id))
            await pilot.press("i")
            details = await settle(pilot, lambda: isinstance(app.screen, Details) and app.screen)

            def shown() -> str:
                console = Console(width=160, record=True, file=io.StringIO())
                console.print(details.query_one("#details", Static).content)
                return console.export_text()

            text = await settle(pilot, lambda: "VS Code Server" in shown() and shown(), message="the cache row")
            assert f"1.107.0 ({COMMIT[:12]}) cached: those clients start offline" in text
    finally:
        ws.close()


def test_fetch_downloads_once_where_there_is_internet_and_says_plainly_where_not(
        module_desk: Ptdesk, builds: Path) -> None:
    unreachable = {"PTDESK_VSCODE_DOWNLOAD": f"http://127.0.0.1:{free_port()}/{{commit}}.tar.gz"}
    lines = module_desk.fails("vscode", "fetch", OTHER, extra_env=unreachable)
    assert lines[0].startswith("ptdesk: This machine cannot download from 127.0.0.1:"), lines
    assert "ptdesk vscode add FILE --commit " + OTHER in lines[1]
    with _serving(builds) as port:
        mirror = {"PTDESK_VSCODE_DOWNLOAD": f"http://127.0.0.1:{port}/{{commit}}.tar.gz"}
        (builds / f"{OTHER}.tar.gz").write_bytes((builds / "other.tar.gz").read_bytes())
        assert f"({OTHER}) is cached on local" in module_desk.ok("vscode", "fetch", OTHER, extra_env=mirror)
        lines = module_desk.fails("vscode", "fetch", ASKED, extra_env=mirror)
        assert f"has no VS Code Server of commit {ASKED} (HTTP 404)" in lines[0], lines
    assert [c["commit"] for c in module_desk.json("vscode", "status")["cached"]] == sorted([COMMIT, OTHER])


def test_rm_takes_a_build_out_and_the_next_login_drops_its_links(module_desk: Ptdesk) -> None:
    assert f"Removed VS Code Server {OTHER}" in module_desk.ok("vscode", "rm", OTHER)
    assert "is cached" in module_desk.fails("vscode", "rm", OTHER)[0]
    module_desk.ok("vscode", "rm", COMMIT)
    link = f"~/.vscode-server/cli/servers/Stable-{COMMIT}/server"
    result = ssh(module_desk.home / "ssh" / "config", "code",
                 f"ls -A ~/.vscode-server/bin; test -e {link} || test -L {link} || echo gone")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["gone"], result.stdout  # no link left leading nowhere
    assert module_desk.json("vscode", "status")["cached"] == []


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _serving:
    """A mirror of the download host on this machine, serving `folder`."""

    def __init__(self, folder: Path) -> None:
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(folder)))

    def __enter__(self) -> int:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
