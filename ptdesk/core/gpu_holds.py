"""Who holds which GPU right now, on one engine: the ledger's holds read from the engine.

Every managed container of the instance holds the GPUs of its device requests while it runs (or
is being launched); a stopped one only for the `gpu_hold_after_stop` setting after it stopped,
so a quick restart gets them back and a forgotten one does not block them for weeks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ptdesk.core import clock, ledger
from ptdesk.core.durations import seconds
from ptdesk.core.ledger import Hold

if TYPE_CHECKING:
    from ptdesk.core.workstation import Workstation


def hold_seconds(ws: Workstation) -> float:
    """The configured hold after stop, in seconds (the config checked its grammar)."""
    return seconds(ws.config.gpu_hold_after_stop) or 0.0


def engine_holds(ws: Workstation, on_engine: Mapping[str, dict], every_gpu: Iterable[int],
                 exclude: Iterable[str] = ()) -> dict[int, Hold]:
    """GPU index -> Hold, from the engine's own record of each container (one inspect each; ask
    before taking the store's lock). `exclude`: experiment names not to count (one being moved)."""
    skip = set(exclude)
    inspected = {name: ws.engine.try_inspect(c["Id"]) for name, c in on_engine.items() if name not in skip}
    return ledger.holds_from_devices(inspected, every_gpu, now=clock.now(), hold_seconds=hold_seconds(ws))
