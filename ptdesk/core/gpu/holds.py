"""Who holds which GPU right now, on one engine: the ledger's holds read from the engine.

Every managed container of the instance holds the GPUs of its device requests while it runs (or
is being launched); a stopped one only for the `gpu_hold_after_stop` setting after it stopped,
so a quick restart gets them back and a forgotten one does not block them for weeks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.durations import seconds
from ptdesk.core.base.names import container_key
from ptdesk.core.gpu import ledger
from ptdesk.core.gpu.ledger import Hold

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def hold_seconds(site: Site) -> float:
    """The configured hold after stop, in seconds (the config checked its grammar)."""
    return seconds(site.config.gpu_hold_after_stop) or 0.0


def engine_holds(site: Site, on_engine: Mapping[str, dict], every_gpu: Iterable[int],
                 exclude: Iterable[str] = ()) -> dict[int, Hold]:
    """GPU index -> Hold, from the engine's own record of each container (one inspect each; ask
    before taking the store's lock). `exclude`: experiment names not to count (one being moved)."""
    skip = set(exclude)
    inspected = {name: site.engine.try_inspect(c["Id"]) for name, c in on_engine.items() if name not in skip}
    return ledger.holds_from_devices(inspected, every_gpu, now=clock.now(), hold_seconds=hold_seconds(site))


class HoldReader:
    """Holds for a loop that asks every second (the dashboard's GPU panel): the engine is listed
    at most every RELIST seconds (a hold that ends is still seen at once: the stop time is in the
    kept documents); a container is inspected again only when its listed state changed, or its
    document is older than REREAD seconds (a stop, start and stop between two looks keeps the
    listed state)."""

    RELIST = 5.0
    REREAD = 30.0

    def __init__(self) -> None:
        self._documents: dict[str, tuple[str, float, dict | None]] = {}  # id -> (state, read at, document)
        self._inspected: dict[str, dict | None] = {}  # experiment name -> its document, as last listed
        self._listed_at = float("-inf")

    def holds(self, site: Site, every_gpu: Iterable[int]) -> dict[int, Hold]:
        now = clock.now()
        if now - self._listed_at >= self.RELIST or now < self._listed_at:
            self._inspected = self._read(site, now)
            self._listed_at = now
        return ledger.holds_from_devices(self._inspected, every_gpu, now=now, hold_seconds=hold_seconds(site))

    def _read(self, site: Site, now: float) -> dict[str, dict | None]:
        listed = site.engine.list_managed(site.config.instance)
        inspected: dict[str, dict | None] = {}
        fresh: dict[str, tuple[str, float, dict | None]] = {}
        for container in listed:
            state = str(container.get("State") or "")
            kept = self._documents.get(container["Id"])
            if kept is None or kept[0] != state or now - kept[1] > self.REREAD:
                kept = (state, now, site.engine.try_inspect(container["Id"]))
            fresh[container["Id"]] = kept
            inspected[container_key(container)] = kept[2]
        self._documents = fresh
        return inspected
