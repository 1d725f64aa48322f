"""Sending one notice to each of a person's routes that asks for its event.

A route that fails is said once, when it starts failing (the caller reports `first_failure`), not
on every event: a dead webhook must not fill the watcher's log. Which routes are failing is kept
in PTDESK_HOME/notify/failing.json (route names only, no URLs); a route that works again is
cleared, so its next failure is said again.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ptdesk.core.base.private_files import write_secret
from ptdesk.core.notify.routes import DESKTOP, Route, apprise_warnings, load_routes, quiet_apprise


@dataclass(frozen=True)
class Notice:
    """One thing a person should hear: which event, a short title, the text."""

    event: str
    title: str
    body: str

    def to_json(self) -> dict[str, str]:
        return {"event": self.event, "title": self.title, "body": self.body}


@dataclass(frozen=True)
class Delivery:
    route: str
    ok: bool
    first_failure: bool = False  # it worked (or was never tried) before: say it, this once
    reason: str = ""  # why it failed, as the sender said it (apprise's own warning: no URL in it)

    def to_json(self) -> dict[str, object]:
        return {"route": self.route, "ok": self.ok, **({"reason": self.reason} if self.reason else {})}


def send_to(route: Route, notice: Notice) -> tuple[bool, str]:
    """Send through apprise (desktop://: notify-send): whether the receiver took it, and if not why."""
    if route.url == DESKTOP:
        return (True, "") if _desktop(notice) else (False, "notify-send did not show it (no desktop session?)")
    apprise = quiet_apprise()
    sender = apprise.Apprise()
    if not sender.add(route.url):
        return False, "apprise does not accept this URL"
    with apprise_warnings() as said:
        try:
            if sender.notify(title=notice.title, body=notice.body):
                return True, ""
        except Exception as exc:  # noqa: BLE001 - a plugin's own failure is a failed route, never a crash
            said.append(type(exc).__name__)
    return False, "; ".join(dict.fromkeys(said)) or "the receiver did not take it"


def _desktop(notice: Notice) -> bool:
    """A desktop notification on this machine's session (no session bus or no notify-send: failed)."""
    try:
        done = subprocess.run(["notify-send", "--app-name=ptdesk", "--", notice.title, notice.body],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def deliver(home: Path, notice: Notice, everyone: bool = False, person: str | None = None) -> list[Delivery]:
    """Send `notice` to every route of `person` (None: the owner's own) that wants its event
    (`everyone`: every route of everybody, for a test)."""
    routes = [r for r in load_routes(home) if everyone or (r.person == person and r.wants(notice.event))]
    if not routes:
        return []
    failing = _failing(home)
    out = []
    for route in routes:
        ok, reason = send_to(route, notice)
        out.append(Delivery(route.name, ok, first_failure=not ok and route.name not in failing, reason=reason))
    now_failing = ({d.route for d in out if not d.ok} | (set(failing) - {r.name for r in routes})) - {
        d.route for d in out if d.ok}
    if now_failing != set(failing):
        _remember(home, sorted(now_failing))
    return out


def _failing_path(home: Path) -> Path:
    return home / "notify" / "failing.json"


def _failing(home: Path) -> list[str]:
    try:
        return list(json.loads(_failing_path(home).read_text()))
    except (OSError, ValueError):
        return []


def _remember(home: Path, names: list[str]) -> None:
    write_secret(_failing_path(home), json.dumps(names).encode())
