"""Everyone a warning concerns hears it in their own sessions: the experiment's owner and each
collaborator granted a login to it. Each gets the text in their open terminals inside the container,
as `wall` would (written as their own account, so nobody else's terminal is touched), and a
collaborator also on the route the owner set up for them (`ptdesk notify add NAME --for bob`).

The caller has already won the event (once.py): this says it, it does not decide whether to.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from ptdesk.core.access.sessions import tell_sessions
from ptdesk.core.notify.deliver import Delivery, Notice, deliver
from ptdesk.core.notify.herald import Said, person_home
from ptdesk.core.site import Site
from ptdesk.errors import PtdeskError


def granted(site: Site, experiment: str) -> dict[str, int | None]:
    """Collaborators granted a login to `experiment`: name -> their account's uid (None: not made yet)."""
    out: dict[str, int | None] = {}
    for grant in site.store.grants(experiment=experiment):
        person = site.store.collaborator(grant.collaborator)
        if person is not None:
            out[person.name] = person.uid
    return out


def to_terminals(site: Site, container_id: str, uids: set[int], text: str, moment: float) -> int:
    """`text` into every open terminal of each of `uids` in the container; how many got it."""
    told = 0
    for uid in sorted(uids):
        with contextlib.suppress(PtdeskError):  # stopped meanwhile, or no shell: nobody there to tell
            told += tell_sessions(site.engine, container_id, uid, text, moment)
    return told


def to_their_routes(site: Site, people: list[str], notice: Notice) -> list[Delivery]:
    """`notice` on the route the owner set up for each of `people` (none set up: nothing sent)."""
    home = person_home(site.config)
    return [d for name in people for d in deliver(home, notice, person=name)]


def warn_everyone(site: Site, experiment: str, notice: Notice, moment: float, said: Said | None = None) -> Said | None:
    """The owner and every granted collaborator of a running `experiment` read `notice` in their
    terminals there; the collaborators also on their routes. `said`: the owner's own notice (its
    deliveries are kept, the collaborators' added)."""
    record = site.store.experiment(experiment)
    people = granted(site, experiment)
    if record is not None and record.container_id:
        uids = {site.config.uid} | {uid for uid in people.values() if uid is not None}
        to_terminals(site, record.container_id, uids, notice.body, moment)
    theirs = to_their_routes(site, sorted(people), notice)
    if said is None:
        return Said(notice, tuple(theirs)) if theirs else None
    return replace(said, deliveries=said.deliveries + tuple(theirs))
