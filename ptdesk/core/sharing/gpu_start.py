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
from ptdesk.core.base.gpu_models import GpuInventory
from ptdesk.core.base.models import LABEL_GPUS
from ptdesk.core.base.names import current_user
from ptdesk.core.base.times import parse_time
from ptdesk.core.engine.locks import machine_gpu_lock
from ptdesk.core.gpu import ledger
from ptdesk.core.gpu.holds import engine_holds, hold_seconds
from ptdesk.core.gpu.ledger import Hold
from ptdesk.core.sharing import at_launch, gpu_queue
from ptdesk.core.sharing.recreate import recreate
from ptdesk.errors import Conflict, GpusGone, GpuUnavailable, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def device_ids(document: dict) -> tuple[int, ...]:
    """The GPU indices a container's device requests name (none for a CPU experiment)."""
    ids: list[int] = []
    for request in (document.get("HostConfig") or {}).get("DeviceRequests") or []:
        if any("gpu" in (caps or []) for caps in request.get("Capabilities") or []):
            ids += [int(i) for i in request.get("DeviceIDs") or [] if str(i).isascii() and str(i).isdigit()]
    return tuple(ids)


def start_container(site: Site, name: str, container_id: str, request: str | None = None,
                    queue: bool = False) -> str:
    """Start the stopped container of `name` on the GPUs asked for (`request`, a --gpus value;
    None: the ones it had) and return the id of the container that now runs (a new one when it
    moved to other GPUs or to none). `queue`: when they cannot be had now, file it in the GPU
    queue instead (the id of its queue entry then; its record says queued)."""
    engine = site.engine
    document = engine.inspect(container_id)
    attached = device_ids(document)
    # A queue entry cancelled gives it back the GPUs it had by its sealed label, none booked.
    own = attached or ledger.gpus_from_label(((document.get("Config") or {}).get("Labels") or {})
                                             .get(LABEL_GPUS)) or ()
    req = ledger.parse_request(request) if request is not None else None  # refused before anything is locked
    if queue:
        return _start_or_file(site, name, container_id, request, own)
    if request is None and not own:
        engine.start(container_id)  # a CPU experiment: no GPU to check
        return container_id
    inventory = site.gpu_inventory() if request not in (None, "none") else None
    with machine_gpu_lock(engine, document["Image"], site.config.gpu_lock_wait):
        holds = _holds(site, name, inventory or site.gpu_inventory(), request or "")
        if req is None:
            taken = {i: holds[i] for i in own if i in holds}
            if taken:
                raise _gone(site, name, document, own, taken)
            wanted = own
        else:
            wanted = _keep_own(req, own, holds, inventory) or ledger.allocate(req, holds, inventory)
        if wanted == attached:
            engine.start(container_id)
            return container_id
        moved = recreate(site, container_id, wanted)
        engine.start(moved.container_id)
    site.store.audit("moved", name, {"from_gpus": list(own), "gpus": list(wanted), "copied_paths": moved.copied})
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


def _start_or_file(site: Site, name: str, container_id: str, request: str | None, own: tuple[int, ...]) -> str:
    """`ptdesk start NAME --queue`: started now when the GPUs can be had (its own first), else
    filed in the queue. Without --gpus it waits for as many GPUs as it had, any of them."""
    wanted = request or (f"any:{len(own)}" if own else None)
    if wanted is None or wanted == "none":
        return start_container(site, name, container_id, wanted)  # nothing to wait for
    ledger.allocate(ledger.parse_request(wanted), {}, site.gpu_inventory())  # the box can never: refused, not queued
    try:
        return start_container(site, name, container_id, wanted)
    except (GpuUnavailable, Conflict) as exc:
        if getattr(exc, "field", "gpus") not in (None, "gpus"):
            raise
    return queue_start(site, name, container_id, wanted, own)


def queue_start(site: Site, name: str, container_id: str, request: str, had: tuple[int, ...]) -> str:
    """File a stopped experiment in the GPU queue: its container made again as a queue entry (no
    GPU, never started, its writable layer and sealed secrets kept: ptdesk.core.sharing.recreate),
    which admission re-makes on the GPUs it gets and starts; the record follows it. Under the GPU
    lock: no admission round sees the record point at an entry it has not been told is queued."""
    with machine_gpu_lock(site.engine, site.engine.inspect(container_id)["Image"], site.config.gpu_lock_wait):
        filed = recreate(site, container_id, (), queue=gpu_queue.labels_for(request, None, had=had))
        site.store.update_experiment(name, status=gpu_queue.QUEUED)
    site.store.audit("queued", name, {"gpus": request, "had_gpus": list(had)})
    return filed.container_id


def unqueue(site: Site, name: str, container_id: str, had: tuple[int, ...]) -> str:
    """Take a stopped experiment filed again out of the queue: stopped again as it was, with all it
    had and the GPUs it had named (not booked: `ptdesk start` gets them if free, else asks)."""
    with machine_gpu_lock(site.engine, site.engine.inspect(container_id)["Image"], site.config.gpu_lock_wait):
        if site.engine.try_inspect(container_id) is None:
            raise Conflict(f"{name!r} was just given its GPUs: it is starting, no longer queued.",
                           f"Stop it again if you wish: ptdesk stop {name}")
        back = recreate(site, container_id, (), own=had)  # under the lock: admission may not take it meanwhile
        site.store.update_experiment(name, status="exited")
    site.store.audit("queue-cancelled", name, {"gpus": list(had)})
    return back.container_id


def _holds(site: Site, name: str, inventory: GpuInventory, request: str) -> dict[int, Hold | str]:
    """Everyone else's holds: the store's launches in flight (no container yet), then the engine's
    truth about every other container of the instance, then what the queue waits for and others'
    reservations (a start on other GPUs jumps the queue no more than a launch does)."""
    every = [g.index for g in inventory.gpus]
    on_engine = instance_containers(site)
    held: dict[int, Hold | str] = {i: n for i, n in site.store.held_gpus().items() if n != name and n not in on_engine}
    everyone = engine_holds(site, on_engine, every)
    held.update({i: h for i, h in everyone.items() if h.experiment != name})
    record = site.store.experiment(name)
    others = {n: c for n, c in on_engine.items() if n != name}
    # The queue is planned with this experiment's own hold counted: within it, its GPUs are no
    # more the queue's than admission would make them (a quick restart gets them back).
    claimed = at_launch.claims(site, record.owner if record else current_user(), request, others, everyone, inventory)
    return {**claimed, **held}


def _gone(site: Site, name: str, document: dict, own: tuple[int, ...],
          taken: dict[int, Hold | str]) -> GpusGone:
    """The GPUs a stopped experiment had are held by someone else now: say so, and the choices."""
    first = sorted(taken)[0]
    holder = taken[first]
    if isinstance(holder, Hold):
        who = holder.sentence(first)
    else:  # a launch in flight, or what the queue or a reservation claims (at_launch.claims words them)
        claimed = holder.startswith(("the GPU queue", "a reservation"))
        who = f"GPU {first} is held by {holder if claimed else f'experiment {holder!r}'}."
    finished = parse_time((document.get("State") or {}).get("FinishedAt"))
    since = f" (stopped {(clock.now() - finished) / 60:.0f} min ago)" if finished and finished > 0 else ""
    # As many as it had (auto is one GPU), as the dashboard's "Other GPUs" does.
    other = f"any:{len(own)} (or ids)" if len(own) > 1 else "auto (or an id)"
    gpus = f"GPU{'s' if len(own) > 1 else ''} {', '.join(map(str, own))}"
    over = finished is None or clock.now() >= finished + hold_seconds(site)
    return GpusGone(
        (f"{name!r}{since} let go of {gpus} after the hold (gpu_hold_after_stop = "
         f"{site.config.gpu_hold_after_stop}), and {who}") if over else
        f"{name!r}{since} cannot have {gpus} back: {who}",
        f"Start it on other free GPUs: ptdesk start {name} --gpus {other}; "
        f"without a GPU: --gpus none; or wait in the GPU queue (it starts by itself): --queue.", field="gpus")
