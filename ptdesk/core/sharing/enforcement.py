"""When a reservation starts: other people's experiments on its GPUs are warned, then stopped.

Run by the box's service (`ptdesk watch`) every few seconds, and testable with any `now`. Only
ptdesk's own containers are ever stopped (managed, of this instance, holding a reserved GPU through
their device requests, owned by someone other than the reservation's owner); the warning is written
into every terminal session inside the container, so the person working there reads it. After
`reservation_grace` seconds (config) the container is stopped; a negative grace only warns.
A stopped experiment keeps its workspace and everything made inside it: its owner starts it again
when the reservation is over.

The owner hears it in ptdesk too (the dashboard's notices and their notification routes), from
their own ptdesk: whoever's watcher warns or stops an experiment, the watcher of the home that made
it finds its own experiments on a started reservation's GPUs and says so once (warned, then
stopped), as the owner's ptdesk says a queued experiment started. Routes are each person's own, so
no one else's process could reach them.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableSet
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdesk.core.access.sessions import tell_everyone
from ptdesk.core.base import clock
from ptdesk.core.base.models import LABEL_NAME, LABEL_OWNER
from ptdesk.core.base.times import parse_time
from ptdesk.core.gpu import ledger
from ptdesk.core.notify import hooks
from ptdesk.core.sharing import booking, claims
from ptdesk.core.sharing.reservations import Reservation, zone
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


@dataclass(frozen=True)
class Enforced:
    experiment: str
    owner: str
    gpus: tuple[int, ...]
    reservation: Reservation
    # "warned" | "stopped" | "reported" (use outside ptdesk: never touched) | "notified" (this
    # home's own experiment: its owner was told in ptdesk, on their routes and dashboard)
    action: str

    def summary(self) -> str:
        r = self.reservation
        return (f"{self.action} {self.experiment} ({self.owner}) on GPU {','.join(map(str, self.gpus))}: "
                f"reserved by {r.describe()}")

    def to_json(self) -> dict:
        return {"experiment": self.experiment, "owner": self.owner, "gpus": list(self.gpus),
                "reservation": self.reservation.short_id, "action": self.action}


def enforce(site: Site, warned: MutableSet[tuple[str, str]], now: float | None = None) -> list[Enforced]:
    """One pass; `warned` remembers (reservation, container) pairs already warned (the service keeps it)."""
    now = clock.now() if now is None else now
    active = [r for r in booking.reservations(site) if r.active(now)]
    if not active:
        return []
    grace = site.config.reservation_grace
    done = []
    for container in site.engine.list_managed(site.config.instance, all=False):
        labels = container.get("Labels") or {}
        document = site.engine.try_inspect(container["Id"])
        if document is None:
            continue
        holds = set(ledger.held_by_devices({"it": document}, ()))
        for r in active:
            clash = tuple(sorted(holds & set(r.gpus)))
            if not clash or labels.get(LABEL_OWNER) == r.owner:
                continue
            hit = Enforced(labels.get(LABEL_NAME, container["Id"][:12]), labels.get(LABEL_OWNER, "?"), clash, r, "")
            if grace >= 0 and now >= r.start + grace:
                site.engine.stop(container["Id"])
                done.append(_record(site, hit, "stopped"))
                break
            if (r.id, container["Id"]) not in warned:
                _tell(site, container["Id"], r, grace)
                warned.add((r.id, container["Id"]))
                done.append(_record(site, hit, "warned"))
    with contextlib.suppress(OSError):  # a route's trouble (or a full disk) never stops the enforcing
        done += tell_owner(site, active, now)
    return done + _host_use(site, active, warned)


def tell_owner(site: Site, active: list[Reservation], now: float) -> list[Enforced]:
    """This home's experiments on GPUs of someone else's started reservation: their owner hears it
    in ptdesk, once per reservation and experiment while it runs (warned, with when it is stopped)
    and once when it was stopped. What this process said (another watcher of the same person says
    nothing)."""
    # The deadline said is this home's reservation_grace: the same as the stopping watcher's when
    # the team keeps one setting (the engine records no grace).
    grace, said = site.config.reservation_grace, []
    reserved = {g for r in active for g in r.gpus}
    for record in site.store.experiments():
        if not reserved & set(record.gpus or ()):
            continue  # recorded on other GPUs (or none): no inspect every round for it
        document = site.engine.try_inspect(record.container_id) if record.container_id else None
        if document is None:
            continue
        holds, state = set(ledger.held_by_devices({"it": document}, ())), document.get("State") or {}
        for r in active:
            clash = tuple(sorted(holds & set(r.gpus)))
            if not clash or r.owner == record.owner:
                continue
            deadline = None if grace < 0 else r.start + grace
            finished = parse_time(state.get("FinishedAt"))
            stopped = (not state.get("Running") and deadline is not None and now >= deadline
                       and finished is not None and finished >= r.start)
            if not state.get("Running") and not stopped:
                continue  # stopped before the reservation (or by its owner during the grace)
            when = None if deadline is None else f"{r.clock(deadline)} {zone(deadline, r.tz)}"
            if hooks.reservation_displaces(site, record.name, clash, r.describe(), when, stopped,
                                           f"{r.id[:12]}:{record.container_id[:12]}") is not None:
                said.append(_record(site, Enforced(record.name, record.owner, clash, r, ""), "notified"))
    return said


def _host_use(site: Site, active: list[Reservation], warned: MutableSet[tuple[str, str]]) -> list[Enforced]:
    """Processes outside every ptdesk experiment on reserved GPUs: reported (once), never killed."""
    done = []
    for index, claim in claims.claims(site, site.gpu_snapshot(), use_engine=False).items():
        for r in active:
            if index in r.gpus and claim.unclaimed and (r.id, f"gpu-{index}") not in warned:
                warned.add((r.id, f"gpu-{index}"))
                done.append(_record(site, Enforced(f"GPU {index}: {claim.unclaimed_text()}", "outside ptdesk",
                                                 (index,), r, ""), "reported"))
    return done


def _record(site: Site, hit: Enforced, action: str) -> Enforced:
    made = Enforced(hit.experiment, hit.owner, hit.gpus, hit.reservation, action)
    site.store.audit(f"reservation-{action}", hit.experiment, made.to_json(), who="ptdesk-watch")
    return made


def _tell(site: Site, container: str, r: Reservation, grace: float) -> None:
    when = "it will not be stopped" if grace < 0 else f"it is stopped at {r.clock(r.start + grace)}"
    message = (f"ptdesk: GPU {','.join(map(str, r.gpus))} reserved by {r.describe()} "
               f"has started: save your work and give the GPU back ({when}).")
    # A container without a shell still gets stopped on time; the audit log says it was warned.
    with contextlib.suppress(PtdeskError):
        tell_everyone(site.engine, container, message, clock.now())  # as each terminal's own account
