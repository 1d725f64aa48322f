"""Notification routes reach real receivers on this machine: a local SMTP server and a local HTTP
webhook get the messages through apprise (no fake of it); secrets stay in a 0600 file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

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
    assert "mail: sent" in out and "hook: sent" in out
    # Why, as the sender says it (a connection refused), not only that it failed.
    assert "dead: FAILED: A Connection error occurred sending JSON notification to 127.0.0.1." in out
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
    code, _, err = run_cli(["notify", "add", "two"], env, input="json://127.0.0.1/a\njson://127.0.0.1/b\n")
    assert code == 2 and "stdin holds 2 lines, and a route takes one URL." in err  # the second was dropped silently
    assert not routes_path(Path(env["PTDESK_HOME"])).exists()


def test_adding_a_route_of_a_name_that_exists_says_it_replaced_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _add(env, "hook", "json://127.0.0.1:9/first")[0] == 0
    code, out, _ = _add(env, "hook", "json://127.0.0.1:9/second")
    assert code == 0 and out.startswith("Replaced route 'hook' (it was json://127.0.0.1:9/first")
    listed = json.loads(run_cli(["notify", "ls", "--json"], env)[1])
    assert [r["name"] for r in listed] == ["hook"] and "second" in json.dumps(listed)


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


def test_a_collaborators_route_hears_only_what_concerns_them(tmp_path: Path) -> None:
    env = _env(tmp_path)
    home = Path(env["PTDESK_HOME"])
    with webhook_server() as (mine, my_posts), webhook_server() as (theirs, their_posts):
        assert _add(env, "me", mine)[0] == 0
        # A route for bob is written by the owner's ptdesk (bob is checked against the store in
        # the CLI; here straight to the routes file, as the CLI writes it then).
        from ptdesk.core.notify.routes import FOR_THEM, add_route
        add_route(home, "bob-chat", theirs, FOR_THEM, "bob")
        owners = deliver(home, Notice("cull", "owner's", "to the owner"))
        bobs = deliver(home, Notice("cull", "bob's", "to bob"), person="bob")
        assert deliver(home, Notice("oom", "not for bob", "x"), person="bob") == []  # not an event of his
    assert [d.route for d in owners] == ["me"] and [d.route for d in bobs] == ["bob-chat"]
    assert [p["title"] for p in my_posts] == ["owner's"] and [p["title"] for p in their_posts] == ["bob's"]
    code, _, err = _add(env, "x", mine, "--for", "nobody")
    assert code == 2 and "'nobody' is not one of your collaborators" in err


def test_which_events_a_route_gets_is_the_configs_default_and_can_be_changed(tmp_path: Path) -> None:
    env = _env(tmp_path)
    home = Path(env["PTDESK_HOME"])
    home.mkdir(parents=True)
    (home / "config.toml").write_text('notify_events = ["oom", "cull"]\n')
    code, out, _ = _add(env, "hook", "json://127.0.0.1/x")
    assert code == 0 and "gets: oom, cull." in out
    code, out, _ = run_cli(["notify", "events", "hook", "driver,reservation"], env)
    assert code == 0 and "gets: driver, reservation." in out
    assert json.loads(routes_path(home).read_text())["routes"][0]["events"] == ["driver", "reservation"]
    code, _, err = run_cli(["notify", "events", "nope", "oom"], env)
    assert code == 1 and "no route named 'nope'" in err
    (home / "config.toml").write_text('notify_events = ["oom", "bogus"]\n')
    code, _, err = _add(env, "other", "json://127.0.0.1/y")
    assert code == 1 and "notify_events in config.toml names 'bogus'" in err


def test_the_desktop_route_runs_notify_send_and_is_refused_without_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, _, err = _add({**env, "PATH": str(tmp_path / "empty")}, "desk", "desktop://")
    assert code == 2 and "desktop:// needs notify-send" in err
    # A notify-send of our own on PATH: it records what it was asked to show (a real process).
    bin_dir, shown = tmp_path / "bin", tmp_path / "shown.txt"
    bin_dir.mkdir()
    (bin_dir / "notify-send").write_text(f'#!/bin/sh\nprintf "%s|" "$@" > {shown}\n')
    (bin_dir / "notify-send").chmod(0o755)
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    assert _add(env, "desk", "desktop://")[0] == 0
    code, out, _ = run_cli(["notify", "test"], env)
    assert code == 0 and "desk: sent" in out
    assert shown.read_text() == "--app-name=ptdesk|--|ptdesk: test|A test from ptdesk notify test: this route works.|"


@pytest.mark.engine
def test_removing_a_collaborator_removes_the_routes_set_up_for_them(tmp_path: Path) -> None:
    """A later, different person with the same name must not inherit bob's chat route."""
    env = _env(tmp_path)
    home = Path(env["PTDESK_HOME"])
    assert run_cli(["collab", "add", "bob"], env)[0] == 0
    assert _add(env, "bob-chat", "json://127.0.0.1/bob", "--for", "bob")[0] == 0
    assert _add(env, "mine", "json://127.0.0.1/me")[0] == 0
    code, _, err = run_cli(["collab", "rm", "bob"], env)
    assert code == 0, err
    assert [r["name"] for r in json.loads(routes_path(home).read_text())["routes"]] == ["mine"]
