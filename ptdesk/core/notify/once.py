"""Each event said once, however many of a person's ptdesk processes watch the same box.

The box's engine holds the marker, as it holds the GPU lock (ptdesk/core/engine/locks.py): a
created, never started container whose name is a digest of who hears and what happened. Creating
a name the engine already has fails atomically, so of two watchers exactly one creates it and says
the event; the other is silent. The name and label carry no secret and no text of the event (only a
digest). Each marker carries the moment it may go (ptdesk.said.until); every process that says an
event removes the markers past theirs (one listing per event said, so they stay bounded without a
running `ptdesk watch`), and `ptdesk jobs --prune` removes those of the jobs it forgets.

When the engine itself is lost there is nothing to hold a marker, so that event (and its "back")
is decided by a file in the person's home instead: creating it exclusively wins "lost", removing it
wins "back" (both atomic on one file system).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ptdesk.core.base import clock
from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.base.private_files import ensure_private_dir
from ptdesk.core.base.times import parse_time
from ptdesk.core.kinds import REGISTRY
from ptdesk.core.site import Site
from ptdesk.errors import Conflict, PtdeskError

LABEL_SAID = "ptdesk.said"
MARKER_PREFIX = "ptdesk.said-"
LABEL_UNTIL = "ptdesk.said.until"
KEEP_FOR = 30 * 86400.0  # a marker outlives any event it stands for (an expiry is said a day ahead)
# A job's end is said by whoever finishes its stopped container, and finishing removes the container:
# after that nobody can see the end again, so its marker only has to outlast the seconds in which two
# watchers finish the same container at once. A day is ample, and a team running sweeps no longer
# gathers a month of job markers in `docker ps -a`.
KEEP_SHORT = {"job": 86400.0}


def keep_for(key: str) -> float:
    """How long the marker of `key` ("job:box:name", "oom:...") must last to keep it said once."""
    return KEEP_SHORT.get(key.split(":", 1)[0], KEEP_FOR)


def marker_name(site: Site, key: str) -> str:
    """Who hears (uid and ptdesk instance) and what (`key`), as a digest: nothing readable."""
    digest = hashlib.sha256(f"{os.getuid()}\0{site.config.instance}\0{key}".encode()).hexdigest()
    return MARKER_PREFIX + digest[:40]


def first_to_say(site: Site, key: str) -> bool:
    """True for exactly one caller per (person, instance, key) on this engine."""
    # The instance, so a test run's teardown (and anyone looking) sees whose markers these are.
    labels = {LABEL_SAID: "1", LABEL_INSTANCE: site.config.instance,
              LABEL_UNTIL: str(int(clock.now() + keep_for(key)))}
    for kind in REGISTRY.values():  # any image the box has will do; the marker never runs
        try:
            site.engine.create(name=marker_name(site, key), image=kind.image(site.config), labels=labels,
                               command=["true"], host_config={"network_mode": "none"})
            return True
        except Conflict:
            return False
        except PtdeskError:
            continue  # that image is missing here: try the next kind's
    return True  # nothing to hold a marker with: rather said twice than never


def forget_old_markers(site: Site) -> int:
    """Remove markers past their time (by id: a newer one of the same name is never touched)."""
    removed = 0
    for item in site.engine.labelled(LABEL_SAID):
        if (until := _until(item)) is not None and clock.now() > until:
            site.engine.remove(item["Id"], force=True)  # one already gone is no error
            removed += 1
    return removed


def forget_marker(site: Site, key: str) -> None:
    """Remove the marker of `key` (a job forgotten: a new job of its name is said again)."""
    site.engine.remove(marker_name(site, key), force=True)


def _until(item: dict) -> float | None:
    until = (item.get("Labels") or {}).get(LABEL_UNTIL)
    if until and until.isdigit():
        return float(until)
    created = item.get("Created")  # a marker made before markers carried their time
    created = float(created) if isinstance(created, int | float) else parse_time(created)
    return None if created is None else created + KEEP_FOR


def _home_marker(home: Path, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return ensure_private_dir(home / "notify" / "said") / digest


def claim_in_home(home: Path, key: str) -> bool:
    """True for the one caller that creates the marker file for `key`."""
    try:
        os.close(os.open(_home_marker(home, key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        return False


def release_in_home(home: Path, key: str) -> bool:
    """True for the one caller that removes it (the others find it gone)."""
    try:
        os.unlink(_home_marker(home, key))
        return True
    except FileNotFoundError:
        return False
