"""The events found by looking, said once: an out-of-memory kill inside a running experiment, a
workstation's engine lost and back, a collaborator's access expiring within a day, a GPU driver
changed under running experiments (driver.py).
And the one door for events other parts raise (the GPU queue, reservations): `announce`.

`ptdesk watch` (the box's service) runs a Herald. Everything said goes to the person's routes
(deliver.py) once per box (once.py), and into the home's journal, which the dashboard shows.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ptdesk.config import LOCAL, Config
from ptdesk.core.access.sessions import tell_sessions
from ptdesk.core.base import clock
from ptdesk.core.base.private_files import write_secret
from ptdesk.core.host.cgroups import StatsSampler
from ptdesk.core.notify.deliver import Delivery, Notice, deliver
from ptdesk.core.notify.driver import driver_changes
from ptdesk.core.notify.once import claim_in_home, first_to_say, forget_old_markers, release_in_home
from ptdesk.core.site import Site
from ptdesk.errors import PtdeskError

EXPIRY_AHEAD = 86400.0  # an expiry is said when it is this close
JOURNAL_KEEP = 200  # lines the dashboard's journal keeps (the newest)


@dataclass(frozen=True)
class Said:
    """A notice that was said here (this process won it), and what each route did with it."""

    notice: Notice
    deliveries: tuple[Delivery, ...] = ()

    def failed_routes(self) -> list[str]:
        """Routes that just started failing: say these once (later failures stay quiet)."""
        return [d.route for d in self.deliveries if d.first_failure]


def person_home(config: Config) -> Path:
    """The person's own PTDESK_HOME (a remote workstation's config points below it)."""
    return config.home if config.workstation == LOCAL else config.home.parent.parent


def announce(site: Site, key: str, notice: Notice) -> Said | None:
    """Say `notice` once for `key` on this box: to the routes that want it and to the journal.
    None when another watcher said it already. The queue and reservations call this."""
    if not first_to_say(site, key):
        return None
    with contextlib.suppress(PtdeskError):  # markers past their time go with each event said (once.py)
        forget_old_markers(site)
    return _say(person_home(site.config), notice)


def say_now(config: Config, notice: Notice) -> Said:
    """Say `notice` now, without the once check (a person asked for it: `ptdesk report --send`)."""
    return _say(person_home(config), notice)


def _say(home: Path, notice: Notice) -> Said:
    _journal(home, notice)
    return Said(notice, tuple(deliver(home, notice)))


def _journal(home: Path, notice: Notice) -> None:
    path = home / "notify" / "journal.jsonl"
    line = json.dumps({"time": clock.now(), **notice.to_json()})
    try:
        lines = path.read_text().splitlines()[-(JOURNAL_KEEP - 1):]
    except FileNotFoundError:
        lines = []
    write_secret(path, ("\n".join([*lines, line]) + "\n").encode())


def journal(config: Config, after: float = 0.0, limit: int = 20) -> list[dict]:
    """The newest notices said to this person after `after` (what the dashboard shows), oldest first."""
    try:
        lines = (person_home(config) / "notify" / "journal.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines[-limit:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the others still count
        if isinstance(entry, dict) and float(entry.get("time", 0)) > after:
            entries.append(entry)
    return entries


@dataclass
class Herald:
    """Finds today's events on one workstation; one per watcher."""

    site: Site
    sampler: StatsSampler = field(default_factory=StatsSampler)

    def round(self) -> list[Said]:
        """One look for out-of-memory kills, expiries and a changed GPU driver; what this process said."""
        drivers = [announce(self.site, key, notice) for key, notice in driver_changes(self.site)]
        said = [*self._oom_kills(), *self._expiries(), *drivers]
        return [s for s in said if s is not None]

    def tidy(self) -> int:
        """Remove this box's markers of long-past events (any person's: they are all alike)."""
        return forget_old_markers(self.site)

    def engine_changed(self, up: bool, reason: str | None = None) -> Said | None:
        """The engine was lost (up False) or is back: said once per outage."""
        home, where = person_home(self.site.config), self.site.name
        key = f"engine-lost:{self.site.config.instance}:{where}"
        if not up and claim_in_home(home, key):
            return _say(home, Notice("engine", f"ptdesk: workstation '{where}' lost its engine",
                                     f"The Docker engine of '{where}' does not answer ({reason or 'no reason given'}). "
                                     "Experiments there may still run; ptdesk reconnects by itself."))
        if up and release_in_home(home, key):
            return _say(home, Notice("engine", f"ptdesk: workstation '{where}' is back",
                                     f"The Docker engine of '{where}' answers again."))
        return None

    def _oom_kills(self) -> list[Said | None]:
        if self.site.is_remote:
            return []  # its cgroup files are on the other machine
        running = {r.container_id: r for r in self.site.store.experiments()
                   if r.container_id and r.status == "running"}
        out = []
        for cid, stats in self.sampler.sample(running).items():
            if stats.oom_kills:
                out.append(announce(self.site, f"oom:{cid}:{stats.oom_kills}", oom_notice(
                    running[cid].name, stats.oom_kills, running[cid].limits.memory)))
        return out

    def _expiries(self) -> list[Said | None]:
        out, moment = [], clock.now()
        for person in self.site.store.collaborators():
            if person.expires is not None and moment < person.expires <= moment + EXPIRY_AHEAD:
                said = announce(self.site, f"expiry:{person.name}:{person.expires}", expiry_notice(
                    person.name, person.expires, moment))
                if said is not None:
                    said = self._tell(said, person.name, person.uid, expiry_words_for_them(person.expires, moment),
                                      moment)
                out.append(said)
        return out

    def _tell(self, said: Said, person: str, uid: int | None, text: str, moment: float) -> Said:
        """The person hears it too: in their open terminals in every experiment they may use, and on
        the route the owner set up for them."""
        for grant in self.site.store.grants(collaborator=person) if uid is not None else ():
            record = self.site.store.experiment(grant.experiment)
            if record is None or not record.container_id or record.status != "running":
                continue
            with contextlib.suppress(PtdeskError):  # stopped meanwhile: nobody there to tell
                tell_sessions(self.site.engine, record.container_id, uid, text, moment)
        theirs = deliver(person_home(self.site.config), Notice("expiry", "ptdesk: your access expires soon", text),
                         person=person)
        return Said(said.notice, said.deliveries + tuple(theirs))


def oom_notice(name: str, kills: int, limit: str) -> Notice:
    what = "A process" if kills == 1 else f"{kills} processes (so far)"
    return Notice("oom", f"ptdesk: '{name}' ran out of memory",
                  f"{what} in '{name}' was killed: out of memory (limit {limit}). A Jupyter kernel killed "
                  "this way restarts empty. Give the next experiment more with `ptdesk new ... --memory 32g`, "
                  "or raise the default: [limits] memory in config.toml.")


def expiry_words_for_them(expires: float, moment: float) -> str:
    hours = max(1, round((expires - moment) / 3600))
    when = datetime.fromtimestamp(expires).strftime("%Y-%m-%d %H:%M")
    return (f"Your access to this experiment ends at {when} (in about {hours} h); your sessions and what "
            "they run will be ended then. Ask its owner to extend it, and save your work.")


def expiry_notice(person: str, expires: float, moment: float) -> Notice:
    hours = max(1, round((expires - moment) / 3600))
    when = datetime.fromtimestamp(expires).strftime("%Y-%m-%d %H:%M")
    return Notice("expiry", f"ptdesk: {person}'s access expires in {hours} h",
                  f"{person}'s access ends at {when} (in about {hours} h); their sessions will be ended then. "
                  f"To extend it: ptdesk collab rotate {person} --expires 30d (hand them the new export).")
