"""`t`: a shell in the selected SSH experiment; the dashboard steps aside and comes back.

The refusals run in-process through Pilot. The real thing runs the real `ptdesk` in a real
terminal (tmux, as tests/tui/test_terminal.py does) against a real SSH experiment: the shell runs a
command, exits, and the live dashboard is there again.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ptdesk.tui.app import PtdeskApp
from tests.support.helpers import JUPYTER_IMAGE, SSH_IMAGE, require_image, run_cli, wait_until
from tests.support.tuihelpers import nvml_scenarios, settle

SIZE = (160, 48)


def _warnings(app: PtdeskApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "warning"]


async def test_no_shell_in_a_jupyter_a_stopped_or_someone_elses_experiment(tui_desk, engine, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    notebook = sleeper("ann-notebook", owner="alice", kind="jupyter")
    stopped = sleeper("ann-stopped", owner="alice", kind="ssh")
    engine.stop(stopped, timeout=0)
    theirs = sleeper("eve-box", owner="eve", kind="ssh")  # eve's ptdesk holds the key, not ours
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        table = app.main.table
        await settle(pilot, lambda: len(table.experiments) == 3 and table.experiments[stopped].status == "exited",
                     message="the rows, one stopped")

        # A Jupyter experiment has a shell too (docker exec), but only one this home can prove it made.
        table.move_cursor(row=table.get_row_index(notebook))
        await pilot.press("t")
        said = await settle(pilot, lambda: [n.message for n in app._notifications if n.severity == "error"],
                            message="the reason")
        assert "'ann-notebook' is not yours to open a shell in." in said[0]

        table.move_cursor(row=table.get_row_index(stopped))
        await pilot.press("t")
        await settle(pilot, lambda: len(_warnings(app)) == 1, message="the second reason")
        assert _warnings(app)[0] == "ann-stopped is exited: start it first (s), then press t again."

        table.move_cursor(row=table.get_row_index(theirs))
        await pilot.press("t")
        await settle(pilot, lambda: len(_warnings(app)) == 2, message="the third reason")
        assert _warnings(app)[1].startswith("eve-box belongs to eve's ptdesk")
        assert app.screen is app.main and app.is_running


TMUX_SOCKET = f"ptdesk-shell-{uuid.uuid4().hex[:8]}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", TMUX_SOCKET, "-f", "/dev/null", *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("ssh") is None,
                    reason="tmux and OpenSSH's client are needed")
@pytest.mark.parametrize("kind", ["ssh", "jupyter"])
def test_shell_key_opens_a_shell_and_comes_back(ptdesk_env, engine, tmp_path, kind):
    """SSH: an OpenSSH login; Jupyter: docker exec as its person in /workspace (no refusal)."""
    require_image(engine, SSH_IMAGE if kind == "ssh" else JUPYTER_IMAGE)
    rc, out, err = run_cli(["new", kind, "--name", "gus-shell", "--json"], ptdesk_env, subprocess_=True)
    assert rc == 0, err
    assert json.loads(out)["name"] == "gus-shell"

    session = "shell"
    ptdesk = Path(sys.executable).parent / "ptdesk"
    env = {k: ptdesk_env[k] for k in ("PTDESK_HOME", "PTDESK_INSTANCE")}
    command = " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                        "TERM=xterm-256color", shlex.quote(str(ptdesk)), "; echo PTDESK-EXITED-$?; sleep 30"])
    transcript = tmp_path / "terminal.log"  # everything written to the terminal, shell included

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session)

    def dashboard() -> bool:
        text = screen()
        return "gus-shell" in text and "t Shell" in text and "running" in text

    tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "40", command)
    try:
        tmux("pipe-pane", "-o", "-t", session, f"cat >> {shlex.quote(str(transcript))}")
        try:
            wait_until(dashboard, timeout=30, message="the dashboard with the SSH experiment")
            tmux("send-keys", "-t", session, "t")  # the only row is the selected one
            wait_until(lambda: "a shell in gus-shell" in screen(), timeout=30, message="the dashboard to step aside")
            # Typed once the terminal is the shell's: keys sent earlier would reach the dashboard.
            tmux("send-keys", "-t", session, "echo hi-from-shell-$((6*7))-$(id -u)-$(pwd); exit", "Enter")
            # The arithmetic is done by the shell in the container: the typed line never says 42. It
            # runs as the experiment's person (not root), where the work is.
            said = wait_until(lambda: re.search(r"hi-from-shell-42-(\d+)-/workspace\r?\n",
                                                transcript.read_text(errors="replace")),
                              timeout=30, message="the shell's output")
            assert said.group(1) != "0"  # the experiment's person, never root
            wait_until(dashboard, timeout=30, message="the dashboard back")
            tmux("send-keys", "-t", session, "?")  # and it is live: it answers keys
            wait_until(lambda: "command palette" in screen(), timeout=10, message="the help screen")
            tmux("send-keys", "-t", session, "Escape")
            wait_until(lambda: "command palette" not in screen(), timeout=10, message="help closed")
            tmux("send-keys", "-t", session, "C-q")
            wait_until(lambda: "PTDESK-EXITED-0" in screen(), timeout=15, message="ptdesk to exit with 0")
        except AssertionError:
            print(screen())
            raise
    finally:
        subprocess.run(["tmux", "-L", TMUX_SOCKET, "kill-server"], capture_output=True)
