"""An expired or revoked collaborator leaves nothing running.

sshd itself refuses an expired key for new logins (the expiry-time option ptdesk writes), but
what the person already runs keeps running: ending it needs ptdesk to act. It does so at every
reconcile (each CLI start, the watcher's reconnect) and in `ptdesk watch`'s housekeeping loop.
Each person's expiry is enforced once per experiment (a store note keyed by the expiry time, so
a new expiry after a rotation is enforced again); an expired key logs in no more, so nothing of
theirs can start again after that.

Every pass also looks at who runs what in each running experiment that gives logins (one pass over
the host's /proc where the engine runs here, else the engine's ps; no exec): a collaborator uid
with no grant there now (revoked, removed, expired) that still runs something — a process that
slipped past an earlier end, or one started in between — is ended again (`end_ungranted`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ptdesk.core.kinds import REGISTRY
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.access.accounts import Ended
    from ptdesk.core.site import Site

# Every reconcile (each `ptdesk ls`) runs both passes, and mostly nobody expired and nothing gives
# logins: the accounts module (what ends processes) is imported only where there is something to check.

ENFORCED_KEY = "expiry.ended."  # + person + "." + experiment -> the expiry that was enforced there


def end_expired(site: Site, now: float | None = None) -> list[Ended]:
    """End the processes of every expired person in every running experiment they were granted."""
    now = time.time() if now is None else now
    store = site.store
    out: list[Ended] = []
    expired = [p for p in store.collaborators() if p.expires is not None and p.expires <= now]
    if not expired:
        return out
    from ptdesk.core.access.accounts import Ended, end_in
    for person in expired:
        for grant in store.grants(collaborator=person.name):
            key = f"{ENFORCED_KEY}{person.name}.{grant.experiment}"
            if store.get_meta(key) == repr(person.expires):
                continue
            record = store.experiment(grant.experiment)
            if record is None:
                continue
            try:
                ended = end_in(site.engine, store, grant.experiment, record.container_id, person.name, "expired")
            except PtdeskError as exc:  # the engine went away: the next pass tries again
                out.append(Ended(person.name, grant.experiment, error=exc.message))
                continue
            if ended.error is None:
                store.set_meta(key, repr(person.expires))
            out.append(ended)
    return out


def end_revoked(site: Site, now: float | None = None) -> list[Ended]:
    """One pass of both: what expired people run, then any collaborator uid without a grant."""
    return end_expired(site, now) + end_ungranted(site, now)


def end_ungranted(site: Site, now: float | None = None) -> list[Ended]:
    """End what collaborator uids without a live grant run in this home's running experiments."""
    now = time.time() if now is None else now
    store = site.store
    people = {c.name: c for c in store.collaborators()}
    names = {c.uid: c.name for c in people.values() if c.uid is not None}
    out: list[Ended] = []
    logins = [r for r in store.experiments() if r.container_id and (kind := REGISTRY.get(r.kind)) is not None
              and kind.grants_logins]
    if not logins:
        return out  # nothing here gives logins: nothing to ask the engine
    from ptdesk.core.access import sessions
    from ptdesk.core.access.accounts import UID_BASE, UID_LAST, end_in
    running = {c["Id"] for c in site.engine.list_managed(site.config.instance, all=False)}  # one request
    logins = [r for r in logins if r.container_id in running]
    # One /proc pass for all of them: the engine's ps is a request per container (~15 ms each).
    local = {} if site.is_remote else sessions.account_uids((r.container_id for r in logins if r.container_id),
                                                            range(UID_BASE, UID_LAST + 1))
    for record in logins:
        assert record.container_id is not None
        uids = local.get(record.container_id)
        if uids is None:  # not visible from here: the engine's ps says
            try:
                uids = site.engine.top_uids(record.container_id)
            except PtdeskError:
                continue  # gone meanwhile: nothing runs there; the next pass looks again
        allowed = {people[g.collaborator].uid for g in store.grants(experiment=record.name)
                   if g.collaborator in people and (people[g.collaborator].expires or now + 1) > now}
        for uid in sorted(u for u in uids if UID_BASE <= u <= UID_LAST and u not in allowed):
            out.append(end_in(site.engine, store, record.name, record.container_id, names.get(uid, f"uid {uid}"),
                              "no grant", account=str(uid)))
    return out
