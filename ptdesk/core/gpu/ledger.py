"""The GPU ledger: which GPUs a new experiment gets.

Docker does not choose free GPUs, so ptdesk does. This module is pure (no Docker, no NVML). A GPU
is held by any record of this store (a launch in flight has no container yet) and by any managed
container of the instance the engine gives it to (its device requests: other users' stores are
invisible, and labels are not identity). The launcher reads them and takes the machine-wide GPU lock, then
calls `allocate(spec.gpus, holds, sampler.inventory())` inside the store's BEGIN IMMEDIATE
transaction and records the result in it; the lock is held until the container exists with its
label, which is what keeps two simultaneous launches, of one user or of two, from getting one GPU.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from ptdesk.core.base.models import LABEL_OWNER
from ptdesk.core.base.times import parse_time
from ptdesk.errors import Conflict, GpuUnavailable, InvalidInput

if TYPE_CHECKING:
    from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad

Mode = Literal["none", "all", "auto", "ids", "count"]
REQUEST_HINT = ("Use --gpus none, all, auto (one GPU), any:N (any N free GPUs), or a comma-separated list of "
                "GPU indices such as 0,2.")
MEMORY_HINT = "Write the free memory each GPU must have as a number and a unit, like 20G, 40GiB or 512M."
_COUNT = re.compile(r"any:(\d+)")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([mgt])(?:i?b)?")
_UNIT = {"m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class GpuRequest:
    """A request people make: none, all, auto (one), these ids, or any `count` GPUs; optionally
    each with at least `min_free` bytes of memory free."""

    mode: Mode
    ids: tuple[int, ...] = ()  # only for mode "ids", in the order given
    count: int = 0  # only for mode "count"
    min_free: int | None = None

    @property
    def wanted(self) -> int:
        """How many GPUs it asks for (all: at least one)."""
        return {"none": 0, "ids": len(self.ids), "count": self.count}.get(self.mode, 1)


def parse_gpu_memory(text: str) -> int:
    """`--gpu-memory 20G` (GiB; M and T too, "GB"/"GiB" alike) in bytes; InvalidInput if malformed."""
    match = _MEMORY.fullmatch((text or "").strip().lower())
    value = float(match.group(1)) * _UNIT[match.group(2)] if match else 0
    if value <= 0:
        raise InvalidInput(f"{text.strip()!r} is not an amount of GPU memory.", MEMORY_HINT)
    return int(value)


def parse_request(text: str, gpu_memory: str | None = None) -> GpuRequest:
    """Validate a --gpus value (and --gpu-memory) early, before anything is created; InvalidInput
    if malformed. The one parser of GPU requests: launches, starts and the queue use it."""
    req = _parse_gpus(text)
    if gpu_memory is None:
        return req
    if req.mode == "none":
        raise InvalidInput("--gpu-memory asks for GPU memory, but --gpus none asks for no GPU.",
                           "Leave out --gpu-memory, or ask for GPUs (auto, any:N, ids).")
    return replace(req, min_free=parse_gpu_memory(gpu_memory))


def _parse_gpus(text: str) -> GpuRequest:
    value = (text or "").strip().lower()
    if value in ("none", "all", "auto"):
        return GpuRequest(value)  # type: ignore[arg-type]
    if not value:
        raise InvalidInput("The GPU request is empty.", REQUEST_HINT)
    count = _COUNT.fullmatch(value)
    if count:
        if int(count.group(1)) == 0:
            raise InvalidInput(f"{text.strip()!r} asks for no GPU.", "Use --gpus none for that, or any:1 or more.")
        return GpuRequest("count", count=int(count.group(1)))
    ids: list[int] = []
    for part in value.split(","):
        item = part.strip()
        if not item.isdigit() or not item.isascii():
            raise InvalidInput(f"{text.strip()!r} is not a GPU request ({item or 'an empty item'!r} is not "
                               "a GPU index).", REQUEST_HINT)
        index = int(item)
        if index in ids:
            raise InvalidInput(f"GPU {index} is listed twice in {text.strip()!r}.", REQUEST_HINT)
        ids.append(index)
    return GpuRequest("ids", tuple(ids))


def load_key(gpu: GpuLoad) -> tuple[float, float, int]:
    """Least loaded first: the busier of compute and memory decides (an idle notebook holding
    70 GB is not free), then the total, then the lowest index for a stable choice."""
    util = gpu.utilization or 0.0
    mem = gpu.memory_used or 0.0
    return (max(util, mem), util + mem, gpu.index)


def gpus_from_label(text: str | None) -> tuple[int, ...] | None:
    """The GPU indices a container's `ptdesk.gpus` label names ("" is none); None when malformed
    (labels come from whoever created the container: never trust them enough to crash)."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Hold:
    """Who holds a GPU: the experiment, its owner, and whether it runs. A stopped experiment holds
    its GPUs only until `until` (its stop plus the gpu_hold_after_stop setting)."""

    experiment: str
    owner: str = ""
    state: Literal["running", "stopped", "created"] = "running"
    until: float | None = None

    def sentence(self, index: int) -> str:
        who = f"experiment {self.experiment!r}" + (f" ({self.owner})" if self.owner else "")
        if self.state == "stopped" and self.until is not None:
            return (f"GPU {index} is held by {who}, stopped; it keeps its GPUs until "
                    f"{time.strftime('%H:%M', time.localtime(self.until))} (gpu_hold_after_stop).")
        return f"GPU {index} is held by {who}."

    def hint(self) -> str:
        if self.state == "stopped":
            return (f"Pick another GPU or use --gpus auto; or free it now: ptdesk rm {self.experiment} "
                    "(its owner), or wait until the time above.")
        # Stopping it frees nothing at once (a stopped one keeps its GPUs for the hold).
        return (f"Pick another GPU or use --gpus auto; a stopped experiment keeps its GPUs for gpu_hold_after_stop, "
                f"a removed one frees them at once (ptdesk rm {self.experiment}, its owner).")


def holds_from_devices(inspected: Mapping[str, dict | None], every_gpu: Iterable[int],
                       now: float | None = None, hold_seconds: float | None = None) -> dict[int, Hold]:
    """GPU index -> its Hold, from what the engine really gives each container (its
    HostConfig.DeviceRequests in the inspect documents, name -> document), not from its labels:
    labels are whatever their creator wrote, so a label claiming GPUs books nothing, and a
    container holding GPUs without saying so still holds them. A request for a count rather than
    ids ("all", or `--gpus 2` by hand) holds every GPU: which ones the runtime picks is unknown.

    With `now` and `hold_seconds`, a stopped container holds its GPUs only for `hold_seconds`
    after it stopped (the engine's FinishedAt); a created one (a launch in flight) always holds."""
    held: dict[int, Hold] = {}
    every = tuple(every_gpu)
    for name, document in inspected.items():
        hold = _hold_of(name, document or {}, now, hold_seconds)
        if hold is None:
            continue
        for request in ((document or {}).get("HostConfig") or {}).get("DeviceRequests") or []:
            if not any("gpu" in (caps or []) for caps in request.get("Capabilities") or []):
                continue
            ids = [str(i) for i in request.get("DeviceIDs") or []]
            indices = [int(i) for i in ids if i.isascii() and i.isdigit()]
            if not ids or len(indices) < len(ids):  # a count, or UUIDs: assume the worst
                indices = list(every)
            for index in indices:
                held.setdefault(index, hold)
    return held


def held_by_devices(inspected: Mapping[str, dict | None], every_gpu: Iterable[int]) -> dict[int, str]:
    """GPU index -> experiment name, every container holding (holds_from_devices without expiry)."""
    return {index: hold.experiment for index, hold in holds_from_devices(inspected, every_gpu).items()}


def _hold_of(name: str, document: dict, now: float | None, hold_seconds: float | None) -> Hold | None:
    state = document.get("State") or {}
    owner = ((document.get("Config") or {}).get("Labels") or {}).get(LABEL_OWNER, "")
    status = state.get("Status") or ("running" if state.get("Running") else "exited")
    if status in ("running", "paused", "restarting"):
        return Hold(name, owner)
    if status == "created":
        return Hold(name, owner, "created")
    finished = parse_time(state.get("FinishedAt"))
    until = finished + hold_seconds if finished is not None and hold_seconds is not None else None
    if until is not None and now is not None and now >= until:
        return None  # stopped longer than the hold: its GPUs are free for others
    return Hold(name, owner, "stopped", until)


def allocate(request: str | GpuRequest, held: Mapping[int, str | Hold],
             inventory: GpuInventory | None) -> tuple[int, ...]:
    """The GPU indices to give a new experiment, or a PtdeskError saying why not.

    `held` maps GPU index -> the experiment holding it (its name, or its Hold). `inventory` may be
    None only for "none" (nothing to look at).
    """
    req = parse_request(request) if isinstance(request, str) else request
    holds = {i: h if isinstance(h, Hold) else Hold(h) for i, h in held.items()}
    if req.mode == "none":
        return ()
    if inventory is None:
        from ptdesk.core.base.gpu_models import GpuInventory
        inventory = GpuInventory(False, "The GPUs were not looked at.")
    if not inventory.available:
        if req.mode == "auto" and not req.min_free:
            return ()  # a CPU-only box: "auto" quietly means no GPU
        raise GpuUnavailable(f"No GPU can be given: {inventory.reason or 'NVML is not available.'}",
                             "Launch with --gpus none (or auto) on a machine without a usable NVIDIA driver.")
    devices = {g.index: g for g in inventory.gpus}
    _check_possible(req, devices)
    if req.mode in ("auto", "count"):
        return _pick(req, devices, holds)
    wanted = tuple(sorted(devices)) if req.mode == "all" else req.ids
    if req.mode == "all" and not wanted:
        raise GpuUnavailable("This machine has no GPUs to give.", "Launch with --gpus none.")
    for index in wanted:
        if index not in devices:
            raise GpuUnavailable(
                f"There is no GPU {index}: this machine has {_count(len(devices))}.",
                f"Use indices {_range(devices)}, or --gpus auto." if devices else "Launch with --gpus none.")
        why = _not_usable(devices[index], req)
        if index in holds and not devices[index].error:
            raise Conflict(holds[index].sentence(index), holds[index].hint(), field="gpus")
        if why:
            raise GpuUnavailable(f"GPU {index} cannot be used right now ({why}).",
                                 "Pick another GPU, or --gpus auto; `ptdesk gpus` shows their state.")
    return tuple(wanted)


def _check_possible(req: GpuRequest, devices: Mapping[int, GpuLoad]) -> None:
    """Requests no state of this machine could ever meet are bad input (exit 2), not "busy"."""
    if req.mode == "count" and req.count > len(devices):
        raise InvalidInput(f"any:{req.count} asks for more GPUs than this machine has ({_count(len(devices))}).",
                           f"Ask for any:{len(devices)} or fewer." if devices else "Launch with --gpus none.")
    totals = [g.memory_total for g in devices.values() if g.memory_total]
    if req.min_free and totals and max(totals) < req.min_free:
        raise InvalidInput(f"No GPU here has {_gib(req.min_free)} of memory: the largest has {_gib(max(totals))}.",
                           "Ask for less with --gpu-memory.")


def _not_usable(gpu: GpuLoad, req: GpuRequest) -> str | None:
    """Why a GPU nobody holds still cannot be given for this request (None: it can)."""
    if gpu.error:
        return gpu.error
    if gpu.unclaimed:
        return gpu.unclaimed
    if req.min_free and (gpu.memory_free is None or gpu.memory_free < req.min_free):
        free = "unknown" if gpu.memory_free is None else _gib(gpu.memory_free)
        return f"{free} free, {_gib(req.min_free)} asked for"
    return None


def _pick(req: GpuRequest, devices: Mapping[int, GpuLoad], holds: Mapping[int, Hold]) -> tuple[int, ...]:
    """auto (one) or any:N: the least loaded GPUs nobody holds that can be given."""
    if not devices and req.mode == "auto":
        return ()  # NVML works but there are no GPUs: same as a CPU-only box
    free = [g for g in devices.values() if g.index not in holds and not _not_usable(g, req)]
    if len(free) < req.wanted:
        taken = ", ".join(f"{i} by {holds[i].experiment!r}" for i in sorted(holds) if i in devices)
        other = ", ".join(f"{g.index} ({_not_usable(g, req)})" for g in devices.values()
                          if g.index not in holds and _not_usable(g, req))
        detail = "; ".join(x for x in (f"held: {taken}" if taken else "", f"not usable: {other}" if other else "")
                           if x)
        if req.mode == "auto":
            raise GpuUnavailable(f"No free GPU: this machine has {_count(len(devices))}, none free ({detail}).",
                                 "Stop an experiment that holds one, wait with --queue, or launch with --gpus none.")
        raise GpuUnavailable(f"Only {len(free)} of the {req.count} GPUs any:{req.count} asks for "
                             f"{'is' if len(free) == 1 else 'are'} free ({detail}).",
                             "Wait for them with --queue, ask for fewer, or launch with --gpus none.")
    return tuple(sorted(g.index for g in sorted(free, key=load_key)[:req.wanted]))


def why_chosen(req: GpuRequest, chosen: tuple[int, ...], inventory: GpuInventory | None) -> str | None:
    """What a person is told about the GPUs auto / any:N chose: the least loaded of the free ones,
    with their load. None for requests that named the GPUs (or got none)."""
    if req.mode not in ("auto", "count") or not chosen or inventory is None:
        return None
    loads = {g.index: g for g in inventory.gpus}
    each = ", ".join(f"GPU {i}: {_percent(loads[i].utilization)} busy, "
                     f"{_gib(loads[i].memory_free) if loads[i].memory_free is not None else '?'} free"
                     for i in chosen if i in loads)
    return f"the least loaded of the free GPUs ({each})"


def _percent(fraction: float | None) -> str:
    return "?%" if fraction is None else f"{fraction * 100:.0f}%"


def _gib(value: int) -> str:
    return f"{value / 1024**3:.0f} GiB"


def _count(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _range(devices: Mapping[int, GpuLoad]) -> str:
    indices = sorted(devices)
    if indices == list(range(len(indices))):
        return f"0-{indices[-1]}" if len(indices) > 1 else "0"
    return ", ".join(map(str, indices))


def not_usable(gpu: GpuLoad, req: GpuRequest) -> str | None:
    """Why a GPU nobody holds still cannot be given for `req` (None: it can); the queue asks too."""
    return _not_usable(gpu, req)
