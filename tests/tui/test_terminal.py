"""The real `ptdesk` command in a real terminal (tmux): it draws, answers keys, and ctrl+q exits."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.helpers import wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


SOCKET = f"ptdesk-test-{uuid.uuid4().hex[:8]}"  # a tmux server of our own: its size is ours to set


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, "-f", "/dev/null", *args], capture_output=True, text=True,
                          check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def _ptdesk_command(ptdesk_env: dict[str, str]) -> str:
    ptdesk = Path(sys.executable).parent / "ptdesk"
    env = {k: ptdesk_env[k] for k in ("PTDESK_HOME", "PTDESK_INSTANCE")}
    # COLUMNS/LINES from the test's own environment would override the terminal's real size.
    return " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                     "TERM=xterm-256color", shlex.quote(str(ptdesk)), "; echo PTDESK-EXITED-$?; sleep 30"])


def test_ptdesk_in_tmux(ptdesk_env, sleeper):
    sleeper("gina-term", owner="gina")
    session = f"ptdesk-test-{uuid.uuid4().hex[:8]}"
    command = _ptdesk_command(ptdesk_env)
    started = time.monotonic()
    tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "40", command)
    try:
        try:
            wait_until(lambda: "gina-term" in screen(session) and "? Help" in screen(session),
                       timeout=30, message="the dashboard with the experiment")
        except AssertionError:
            print(screen(session))
            raise
        text = screen(session)
        assert "ptdesk" in text and "Docker" in text and "1 experiment (1 running)" in text
        assert "No GPU information" in text or "GPU" in text  # a calm line without a driver
        assert "n New" in text and "? Help" in text  # the footer lists the keys
        first_paint = time.monotonic() - started

        tmux("send-keys", "-t", session, "?")
        wait_until(lambda: "What every key does" in screen(session) or "command palette" in screen(session),
                   timeout=10, message="the help screen")
        tmux("send-keys", "-t", session, "Escape")
        wait_until(lambda: "command palette" not in screen(session), timeout=10, message="help closed")

        tmux("send-keys", "-t", session, "C-q")
        wait_until(lambda: "PTDESK-EXITED-0" in screen(session), timeout=15, message="ptdesk to exit with 0")
        print(f"first paint with the experiment listed: {first_paint:.2f} s")
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)


def test_ptdesk_in_an_80x24_terminal(ptdesk_env, sleeper):
    """The rows, `? Help` and `k` are on screen at 80×24; `?` opens the help there."""
    for i in range(4):
        sleeper(f"tiny-{i}", owner="gina")
    session = f"ptdesk-test-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", _ptdesk_command(ptdesk_env))
    try:
        try:
            wait_until(lambda: all(f"tiny-{i}" in screen(session) for i in range(4)), timeout=30,
                       message="every row at 80x24")
        except AssertionError:
            print(screen(session))
            raise
        wait_until(lambda: screen(session).splitlines()[-1].startswith("? Help"), timeout=10, message="the footer")
        footer = screen(session).splitlines()[-1]
        assert "k Collab" in footer, footer
        tmux("send-keys", "-t", session, "?")
        wait_until(lambda: "Start a new experiment" in screen(session), timeout=10,
                   message="the help screen")
        tmux("send-keys", "-t", session, "Escape")
        tmux("send-keys", "-t", session, "C-q")
        wait_until(lambda: "PTDESK-EXITED-0" in screen(session), timeout=15, message="ptdesk to exit with 0")
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-session", "-t", session], capture_output=True)
