"""Each event said once, however many of a person's ptdesk processes watch the same box.

The box's engine holds the marker, as it holds the GPU lock (ptdesk/core/engine/locks.py): a
created, never started container whose name is a digest of who hears and what happened. Creating
a name the engine already has fails atomically, so of two watchers exactly one creates it and says
the event; the other is silent. The name and label carry no secret and no text of the event (only a
digest). Markers older than KEEP_FOR are removed by the watchers.

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
KEEP_FOR = 30 * 86400.0  # a marker outlives any event it stands for (an expiry is said a day ahead)


def marker_name(site: Site, key: str) -> str:
    """Who hears (uid and ptdesk instance) and what (`key`), as a digest: nothing readable."""
    digest = hashlib.sha256(f"{os.getuid()}\0{site.config.instance}\0{key}".encode()).hexdigest()
    return MARKER_PREFIX + digest[:40]


def first_to_say(site: Site, key: str) -> bool:
    """True for exactly one caller per (person, instance, key) on this engine."""
    # The instance, so a test run's teardown (and anyone looking) sees whose markers these are.
    labels = {LABEL_SAID: "1", LABEL_INSTANCE: site.config.instance}
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
    """Remove markers older than KEEP_FOR (by id: a newer one of the same name is never touched)."""
    removed = 0
    for item in site.engine.labelled(LABEL_SAID):
        created = item.get("Created")
        created = float(created) if isinstance(created, int | float) else parse_time(created)
        if created is not None and clock.now() - created > KEEP_FOR:
            site.engine.remove(item["Id"], force=True)
            removed += 1
    return removed


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
