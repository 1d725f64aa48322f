"""Each person's notification routes: where they want to hear, and which events go there.

A route is an apprise URL (Slack, Feishu, DingTalk, WeCom, ntfy, e-mail `mailto://`, a JSON
webhook `json://` ...). Such URLs carry tokens and passwords, so they are kept like every other
secret: in PTDESK_HOME/notify/routes.json (0600, in a 0700 folder), read from stdin when added
(never a command-line argument, which other users see in `ps`), and shown only with apprise's own
privacy masking. The dashboard is always a route of its own and needs no entry here.

A route may be the owner's (`person` None) or one the owner set up for a collaborator (`ptdesk
notify add NAME --for bob`): bob's route hears only the warnings that concern bob. `desktop://` is
ptdesk's own route: a desktop notification through `notify-send` on the machine that says it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ptdesk.core.base.private_files import write_secret
from ptdesk.errors import ConfigError, InvalidInput, NotFound

# Every event a route can ask for, and what it means (the default: all of them).
EVENTS: dict[str, str] = {
    "oom": "a process in one of your experiments was killed: out of memory",
    "engine": "a workstation's Docker engine was lost, and when it is back",
    "expiry": "a collaborator's access expires within a day",
    "cull": "an idle experiment will be stopped, and how to keep it",
    "started": "your queued experiment started",
    "gpu-free": "a GPU you wait for is free",
    "reservation": "a reservation starts or ends within minutes, or stops/warns one of your experiments",
    "driver": "the GPU driver changed under running experiments",
    "report": "the weekly usage report: who held and who used the GPUs",
    "job": "a batch job of yours ended: how, exit code, duration, GPU-hours, last log lines",
}
# What a collaborator's route asks for unless told: the warnings that concern them.
FOR_THEM = ("expiry", "cull", "reservation")
DESKTOP = "desktop://"
_ROUTE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Route:
    name: str
    url: str = field(repr=False)  # a secret: never in repr, logs or listings
    events: tuple[str, ...] = tuple(EVENTS)
    person: str | None = None  # a collaborator this route is for; None: the owner's own

    def wants(self, event: str) -> bool:
        return event in self.events

    def to_json(self) -> dict[str, object]:
        """What `ptdesk notify ls --json` shows: the URL masked as apprise masks it."""
        return {"name": self.name, "url": masked(self.url), "events": list(self.events), "for": self.person}


def quiet_apprise():
    """apprise, with its log kept out of ptdesk's output: its messages may name a route's host
    and user, and a failure is said by ptdesk once (see deliver.py), not by apprise every time."""
    import apprise

    logger = logging.getLogger("apprise")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return apprise


@contextmanager
def apprise_warnings() -> Iterator[list[str]]:
    """What apprise warns of while in the block ("A Connection error occurred sending JSON
    notification to 127.0.0.1."), so `notify test` can say why a route failed. Its warnings name the
    host, never the URL's secret part (its URL privacy); debug lines, which may, are not kept."""
    said: list[str] = []
    handler = _Collect(said)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(" ".join(record.getMessage().split())[:200])


def check_url(url: str) -> str:
    """`url` if apprise can send to it; otherwise one sentence naming only its scheme (the rest
    may be a secret)."""
    url = url.strip()
    if url.lower().rstrip("/") == DESKTOP.rstrip("/"):
        if shutil.which("notify-send") is None:
            raise InvalidInput("desktop:// needs notify-send, which is not installed on this machine.",
                               "Install it (apt install libnotify-bin), or use the terminal alerts: "
                               "ptdesk notify terminal osc9")
        return DESKTOP
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme:
        raise InvalidInput("A route must be a URL like mailto://user:password@example.org or "
                           "json://host:port/path.", "See https://github.com/caronc/apprise/wiki for every scheme.")
    apprise = quiet_apprise()
    from apprise.manager_plugins import NotificationManager

    if scheme.lower() not in NotificationManager():
        raise InvalidInput(f"'{scheme}://' is not a notification scheme ptdesk can send to.",
                           "See https://github.com/caronc/apprise/wiki for the schemes (mailto://, json://, "
                           "slack://, ntfy://, feishu://, dingtalk://, wecombot:// ...).")
    if apprise.Apprise.instantiate(url) is None:
        raise InvalidInput(f"The {scheme}:// route is incomplete or malformed (for e-mail, a valid from= and to= "
                           "address; for chat, its token).",
                           f"See what {scheme}:// needs at https://github.com/caronc/apprise/wiki")
    return url


def masked(url: str) -> str:
    if url == DESKTOP:
        return url
    plugin = quiet_apprise().Apprise.instantiate(url)
    return plugin.url(privacy=True) if plugin is not None else url.split("://", 1)[0] + "://…"


def check_events(text: str | None, default: tuple[str, ...] = tuple(EVENTS)) -> tuple[str, ...]:
    """`oom,engine` -> ("oom", "engine"); None -> `default`; `all` -> every event."""
    if text is None:
        return default
    if text.strip() == "all":
        return tuple(EVENTS)
    events = tuple(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise InvalidInput(f"'{', '.join(unknown) or text}' is not an event ptdesk says.",
                           f"Pick from: {', '.join(EVENTS)} (or all).")
    return events


def default_events(configured: tuple[str, ...]) -> tuple[str, ...]:
    """What a new route of the owner's gets: config.toml's notify_events, or every event."""
    unknown = [e for e in configured if e not in EVENTS]
    if unknown:
        raise ConfigError(f"notify_events in config.toml names '{unknown[0]}', which is not an event ptdesk says.",
                          f"Pick from: {', '.join(EVENTS)}.")
    return configured or tuple(EVENTS)


def set_events(home: Path, name: str, events: tuple[str, ...]) -> Route:
    """Change which events route `name` gets (its URL stays as it is)."""
    routes = load_routes(home)
    route = next((r for r in routes if r.name == name), None)
    if route is None:
        raise NotFound(f"There is no route named '{name}'.", "See them with: ptdesk notify ls")
    changed = Route(route.name, route.url, events, route.person)
    _save(home, [changed if r.name == name else r for r in routes])
    return changed


def routes_path(home: Path) -> Path:
    return home / "notify" / "routes.json"


def load_routes(home: Path) -> list[Route]:
    path = routes_path(home)
    try:
        data = json.loads(path.read_text())
        return [Route(r["name"], r["url"], tuple(e for e in r["events"] if e in EVENTS), r.get("for"))
                for r in data["routes"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a routes file ptdesk wrote ({exc}).",
                          "Fix it, or remove it and add the routes again with: ptdesk notify add NAME") from None


def _save(home: Path, routes: list[Route]) -> None:
    data = {"routes": [{"name": r.name, "url": r.url, "events": list(r.events), "for": r.person} for r in routes]}
    write_secret(routes_path(home), (json.dumps(data, indent=1) + "\n").encode())


def check_name(name: str) -> str:
    if not _ROUTE_NAME.fullmatch(name):
        raise InvalidInput(f"'{name}' is not a route name.",
                           "Use up to 32 lower-case letters, digits, '-' or '_', e.g. team-chat.")
    return name


def add_route(home: Path, name: str, url: str, events: tuple[str, ...], person: str | None = None) -> Route:
    """Add or replace route `name` (checked first: nothing is written for a bad one)."""
    check_name(name)
    route = Route(name, check_url(url), events, person)
    _save(home, [r for r in load_routes(home) if r.name != name] + [route])
    return route


def remove_route(home: Path, name: str) -> None:
    routes = load_routes(home)
    if not any(r.name == name for r in routes):
        raise NotFound(f"There is no route named '{name}'.", "See them with: ptdesk notify ls")
    _save(home, [r for r in routes if r.name != name])


def remove_routes_for(home: Path, person: str) -> list[str]:
    """Forget the routes the owner set up for collaborator `person` (when they are removed: a later,
    different person of that name must not get them); the names removed."""
    routes = load_routes(home)
    gone = [r.name for r in routes if r.person == person]
    if gone:
        _save(home, [r for r in routes if r.person != person])
    return gone
