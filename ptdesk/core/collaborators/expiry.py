"""An expired collaborator leaves nothing running.

sshd itself refuses an expired key for new logins (the expiry-time option ptdesk writes), but
what the person already runs keeps running: ending it needs ptdesk to act. It does so at every
reconcile (each CLI start, the watcher's reconnect) and in `ptdesk watch`'s housekeeping loop.
Each person's expiry is enforced once per experiment (a store note keyed by the expiry time, so
a new expiry after a rotation is enforced again); an expired key logs in no more, so nothing of
theirs can start again after that.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ptdesk.core.access.accounts import Ended, end_in
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

ENFORCED_KEY = "expiry.ended."  # + person + "." + experiment -> the expiry that was enforced there


def end_expired(ws: Site, now: float | None = None) -> list[Ended]:
    """End the processes of every expired person in every running experiment they were granted."""
    now = time.time() if now is None else now
    store = ws.store
    out: list[Ended] = []
    for person in store.collaborators():
        if person.expires is None or person.expires > now:
            continue
        for grant in store.grants(collaborator=person.name):
            key = f"{ENFORCED_KEY}{person.name}.{grant.experiment}"
            if store.get_meta(key) == repr(person.expires):
                continue
            record = store.experiment(grant.experiment)
            if record is None:
                continue
            try:
                ended = end_in(ws.engine, store, grant.experiment, record.container_id, person.name, "expired")
            except PtdeskError as exc:  # the engine went away: the next pass tries again
                out.append(Ended(person.name, grant.experiment, error=exc.message))
                continue
            if ended.error is None:
                store.set_meta(key, repr(person.expires))
            out.append(ended)
    return out
