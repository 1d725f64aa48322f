"""Starting a stopped experiment whose GPUs may be gone (a stopped one keeps them only for a hold).

On start: the same GPUs if nobody else holds them now; otherwise the person chooses — other free
GPUs (`--gpus auto`, ids, `any:N`: the experiment is re-created on them with everything it had,
ptdesk.core.sharing.recreate), no GPU (`--gpus none`: work on code or data while GPUs are scarce), or the
queue (`--queue`). Done under the engine's GPU lock from reading the holds until the container
holding the GPUs runs, as a launch is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ptdesk.core.access.ownership import instance_containers
from ptdesk.core.base import clock
from ptdesk.core.base.models import GpuInventory
from ptdesk.core.base.times import parse_time
from ptdesk.core.engine.locks import machine_gpu_lock
from ptdesk.core.gpu import ledger
from ptdesk.core.gpu.holds import engine_holds
from ptdesk.core.gpu.ledger import Hold
from ptdesk.core.sharing.recreate import recreate
from ptdesk.errors import GpusGone, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def device_ids(document: dict) -> tuple[int, ...]:
    """The GPU indices a container's device requests name (none for a CPU experiment)."""
    ids: list[int] = []
    for request in (document.get("HostConfig") or {}).get("DeviceRequests") or []:
        if any("gpu" in (caps or []) for caps in request.get("Capabilities") or []):
            ids += [int(i) for i in request.get("DeviceIDs") or [] if str(i).isascii() and str(i).isdigit()]
    return tuple(ids)


def start_container(ws: Site, name: str, container_id: str, request: str | None = None,
                    queue: bool = False) -> str:
    """Start the stopped container of `name` on the GPUs asked for (`request`, a --gpus value;
    None: the ones it had) and return the id of the container that now runs (a new one when it
    moved to other GPUs or to none)."""
    engine = ws.engine
    document = engine.inspect(container_id)
    own = device_ids(document)
    req = ledger.parse_request(request) if request is not None else None  # refused before anything is locked
    if queue:
        return queue_start(ws, name, request)
    if request is None and not own:
        engine.start(container_id)  # a CPU experiment: no GPU to check
        return container_id
    inventory = ws.gpu_inventory() if request not in (None, "none") else None
    with machine_gpu_lock(engine, document["Image"], ws.config.gpu_lock_wait):
        holds = _holds(ws, name, inventory or ws.gpu_inventory())
        if request is None:
            taken = {i: holds[i] for i in own if i in holds}
            if taken:
                raise _gone(ws, name, document, own, taken)
            engine.start(container_id)
            return container_id
        assert req is not None
        wanted = _keep_own(req, own, holds, inventory) or ledger.allocate(req, holds, inventory)
        if wanted == own:
            engine.start(container_id)
            return container_id
        moved = recreate(ws, container_id, wanted)
        engine.start(moved.container_id)
    ws.store.audit("moved", name, {"from_gpus": list(own), "gpus": list(wanted), "copied_paths": moved.copied})
    return moved.container_id


def _keep_own(req: ledger.GpuRequest | None, own: tuple[int, ...], holds: dict[int, Hold | str],
              inventory: GpuInventory | None) -> tuple[int, ...] | None:
    """auto / any:N are met by the GPUs it has when they are free: no needless re-creation."""
    if req is None or req.mode not in ("auto", "count") or not own or len(own) != req.wanted:
        return None
    try:
        return ledger.allocate(replace(req, mode="ids", ids=own), holds, inventory)
    except PtdeskError:
        return None


def queue_start(ws: Site, name: str, request: str | None) -> str:
    """Where `ptdesk start --queue` files the start with the GPU queue (issue 22, item 2)."""
    raise PtdeskError(f"Queueing the start of {name!r} is not available on this workstation yet.",
                      f"Start it on other GPUs (ptdesk start {name} --gpus auto) or without one (--gpus none).")


def _holds(ws: Site, name: str, inventory: GpuInventory) -> dict[int, Hold | str]:
    """Everyone else's holds: the store's launches in flight (no container yet), then the engine's
    truth about every other container of the instance."""
    every = [g.index for g in inventory.gpus]
    on_engine = instance_containers(ws)
    held: dict[int, Hold | str] = {i: n for i, n in ws.store.held_gpus().items() if n != name and n not in on_engine}
    held.update(engine_holds(ws, on_engine, every, exclude=(name,)))
    return held


def _gone(ws: Site, name: str, document: dict, own: tuple[int, ...],
          taken: dict[int, Hold | str]) -> GpusGone:
    """The GPUs a stopped experiment had are held by someone else now: say so, and the choices."""
    first = sorted(taken)[0]
    holder = taken[first]
    who = holder.sentence(first) if isinstance(holder, Hold) else f"GPU {first} is held by experiment {holder!r}."
    finished = parse_time((document.get("State") or {}).get("FinishedAt"))
    since = f" (stopped {(clock.now() - finished) / 60:.0f} min ago)" if finished and finished > 0 else ""
    # As many as it had (auto is one GPU), as the dashboard's "Other GPUs" does.
    other = f"any:{len(own)} (or ids)" if len(own) > 1 else "auto (or an id)"
    return GpusGone(
        f"{name!r}{since} let go of GPU{'s' if len(own) > 1 else ''} {', '.join(map(str, own))} after the "
        f"hold (gpu_hold_after_stop = {ws.config.gpu_hold_after_stop}), and {who}",
        f"Start it on other free GPUs: ptdesk start {name} --gpus {other}; "
        f"without a GPU: --gpus none; or wait for them: --queue.", field="gpus")
