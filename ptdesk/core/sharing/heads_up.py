"""Ten minutes' notice about reservations, said by the person's own ptdesk (their `ptdesk watch`):
their reservation starts or ends soon; and one of their experiments runs on GPUs someone else
reserved from soon (or now), so it will be warned and stopped by the box's service
(enforcement.py) — its owner hears it in ptdesk (dashboard, routes), everyone working in it in
their terminals and on their own routes; and, when the service has stopped it, that it was and
until when the GPU is reserved. Each said once per box (ptdesk.core.notify.once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.names import current_user
from ptdesk.core.base.times import parse_time
from ptdesk.core.notify import hooks
from ptdesk.core.notify.herald import Said
from ptdesk.core.sharing import booking
from ptdesk.core.sharing.reservations import Reservation

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
    """This person's running experiments on GPUs another person reserved from within AHEAD."""
    if not soon:
        return []
    grace = site.config.reservation_grace
    out: list[Said | None] = []
    for record in site.store.experiments():
        if not record.gpus or not record.container_id:
            continue
        for r in soon:
            clash = tuple(sorted(set(record.gpus) & set(r.gpus)))
            if not clash or r.owner == record.owner:
                continue
            stops = None if grace < 0 else r.start + grace
            if record.status == "running":
                out.append(hooks.reservation_clash(site, record.name, record.container_id, clash, r.owner,
                                                   stops, now))
            elif stops is not None and now >= stops and _stopped_since(site, record.container_id, stops):
                out.append(hooks.reservation_stopped(site, record.name, record.container_id, clash, r.owner, r.end))
    return out


def _stopped_since(site: Site, container_id: str, moment: float) -> bool:
    """The container stopped at or after `moment` (when the reservation's grace ended): stopped for
    it, not by its owner before."""
    document = site.engine.try_inspect(container_id)
    state = (document or {}).get("State") or {}
    finished = parse_time(state.get("FinishedAt"))
    return not state.get("Running") and finished is not None and finished >= moment - 5
