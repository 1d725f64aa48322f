"""Notification routes reach real receivers on this machine: a local SMTP server and a local HTTP
webhook get the messages through apprise (no fake of it); secrets stay in a 0600 file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from ptdesk.core.notify.deliver import Notice, deliver
from ptdesk.core.notify.routes import routes_path
from ptdesk.core.notify.terminal import alert_sequence
from tests.support.helpers import run_cli
from tests.support.receivers import free_port, smtp_server, webhook_server


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PTDESK_HOME": str(tmp_path / "home")}


def _add(env: dict[str, str], name: str, url: str, *extra: str) -> tuple[int, str, str]:
    return run_cli(["notify", "add", name, *extra], env, input=url + "\n")


def _text(message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return " ".join(str(p.get_payload(decode=True) or b"", "utf-8", "replace") for p in parts)


def test_notify_test_reaches_a_real_mail_server_and_webhook_and_says_which_worked(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with smtp_server() as (mail_url, mails), webhook_server() as (hook_url, posts):
        assert _add(env, "mail", mail_url)[0] == 0
        assert _add(env, "hook", hook_url)[0] == 0
        dead = f"json://127.0.0.1:{free_port()}/nobody"  # nothing listens there
        assert _add(env, "dead", dead)[0] == 0
        code, out, _ = run_cli(["notify", "test"], env)
    assert code == 1  # one route did not work: a script can tell
    assert "mail: sent" in out and "hook: sent" in out and "dead: FAILED" in out
    assert len(mails) == 1 and mails[0]["Subject"] == "ptdesk: test"
    assert "this route works" in _text(mails[0])
    assert [p["title"] for p in posts] == ["ptdesk: test"]


def test_route_urls_are_kept_private_and_masked_in_listings(tmp_path: Path) -> None:
    env = _env(tmp_path)
    url = "json://ann:s3cret-token@127.0.0.1:9/hook"
    code, out, _ = _add(env, "hook", url)
    assert code == 0 and "s3cret-token" not in out
    path = routes_path(Path(env["PTDESK_HOME"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for args in (["notify", "ls"], ["notify", "ls", "--json"]):
        code, out, _ = run_cli(args, env)
        assert code == 0 and "hook" in out and "s3cret-token" not in out


def test_bad_routes_are_one_sentence_and_leave_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, _, err = _add(env, "chat", "foo://token@example.org")
    assert code == 2 and "'foo://' is not a notification scheme" in err and "Traceback" not in err
    code, _, err = _add(env, "mail", "mailto://127.0.0.1:25?to=not-an-address")
    assert code == 2 and "mailto:// route is incomplete" in err
    code, _, err = _add(env, "hook", "json://127.0.0.1/x", "--events", "oom,bogus")
    assert code == 2 and "'bogus' is not an event" in err
    assert not routes_path(Path(env["PTDESK_HOME"])).exists()


def test_events_go_only_where_asked_and_a_failing_route_is_said_once(tmp_path: Path) -> None:
    env = _env(tmp_path)
    home = Path(env["PTDESK_HOME"])
    with webhook_server() as (hook_url, posts):
        assert _add(env, "oom-only", hook_url, "--events", "oom")[0] == 0
        assert _add(env, "dead", f"json://127.0.0.1:{free_port()}/x")[0] == 0
        engine_lost = Notice("engine", "engine lost", "gone")
        first = deliver(home, engine_lost)  # only 'dead' wants engine events
        second = deliver(home, Notice("oom", "oom", "killed"))
    assert [(d.route, d.ok, d.first_failure) for d in first] == [("dead", False, True)]
    assert {(d.route, d.ok, d.first_failure) for d in second} == {("oom-only", True, False), ("dead", False, False)}
    assert [p["title"] for p in posts] == ["oom"]
    # The dead route comes back: it is cleared, so a later failure is said again.
    with webhook_server() as (url, _):
        assert _add(env, "dead", url)[0] == 0
        assert deliver(home, engine_lost)[0].ok
    assert json.loads((home / "notify" / "failing.json").read_text()) == []


def test_terminal_alerts_pass_through_tmux_and_carry_no_control_characters(tmp_path: Path) -> None:
    assert alert_sequence("bel", "t", "b") == "\a"
    assert alert_sequence("off", "t", "b") == ""
    evil = "killed\x1b]52;c;evil\a; now"  # an OSC 52 inside would write the clipboard
    assert alert_sequence("osc9", "ptdesk: 'x'", evil) == "\x1b]9;ptdesk: 'x': killed]52,c,evil, now\a"
    assert alert_sequence("osc777", "T", "B") == "\x1b]777;notify;T;B\a"
    assert alert_sequence("osc9", "T", "B", in_tmux=True) == "\x1bPtmux;\x1b\x1b]9;T: B\a\x1b\\"
    env = _env(tmp_path)
    assert "bel" in run_cli(["notify", "terminal"], env)[1]  # the default
    assert "osc9" in run_cli(["notify", "terminal", "osc9"], env)[1]
    code, _, err = run_cli(["notify", "terminal", "loud"], env)
    assert code == 2 and "'loud' is not a terminal alert" in err
    assert "osc9 (choices" in run_cli(["notify", "terminal"], env)[1]
