"""Ten minutes' notice about reservations, said by the person's own ptdesk (their `ptdesk watch`):
their reservation starts or ends soon; and one of their experiments runs on GPUs someone else
reserved from soon, so it will be warned and stopped by the box's service (enforcement.py) — its
owner hears it in ptdesk (dashboard, routes), everyone working in it in their terminals and on their
own routes. From the reservation's start the service's pass says the rest (enforcement.tell_owner).
Each said once per box (ptdesk.core.notify.once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.names import current_user
from ptdesk.core.notify import hooks
from ptdesk.core.notify.herald import Said
from ptdesk.core.sharing import booking
from ptdesk.core.sharing.reservations import Reservation, zone

if TYPE_CHECKING:
    from ptdesk.core.site import Site

AHEAD = 600.0  # how long before a start or an end it is said


def heads_up(site: Site, now: float | None = None) -> list[Said]:
    """One look at the box's reservations; what this process said."""
    now = clock.now() if now is None else now
    found = booking.reservations(site, now=now)
    me = current_user()
    said: list[Said | None] = []
    for r in found:
        if r.owner == me and now < r.start <= now + AHEAD:
            said.append(hooks.reservation_starting(site, r.gpus, r.start, r.end))
        if r.owner == me and r.start <= now < r.end <= now + AHEAD:
            said.append(hooks.reservation_ending(site, r.gpus, r.end))
    said += _clashes(site, [r for r in found if r.start - AHEAD <= now < r.end], now)
    return [s for s in said if s is not None]


def _clashes(site: Site, soon: list[Reservation], now: float) -> list[Said | None]:
    """This person's running experiments on GPUs another person reserved from within AHEAD, said
    before the reservation starts. From its start on, the box's enforcement pass tells the owner
    (warned, then stopped: enforcement.tell_owner), so nothing here says it twice."""
    ahead = [r for r in soon if now < r.start]
    if not ahead:
        return []
    grace = site.config.reservation_grace
    out: list[Said | None] = []
    for record in site.store.experiments():
        if not record.gpus or not record.container_id or record.status != "running":
            continue
        for r in ahead:
            clash = tuple(sorted(set(record.gpus) & set(r.gpus)))
            if not clash or r.owner == record.owner:
                continue
            stops = None if grace < 0 else r.start + grace
            when = None if stops is None else f"{r.clock(stops)} {zone(stops, r.tz)}"
            out.append(hooks.reservation_clash(site, record.name, record.container_id, clash, r.owner,
                                               stops, when, now))
    return out
