"""Reserving GPUs: book, list, cancel and end reservations on a workstation's engine.

Every change is made under the engine's GPU lock (ptdesk.core.engine.locks), so an overlap check and the
booking it allows are one step even for two people reserving the same slot at once. The rules
people asked of a calendar of GPUs: overlaps are refused naming who holds the slot; the past cannot
be edited; a future reservation can be cancelled; a started one can only be ended now (shortened),
never moved or cancelled.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING

from ptdesk.core.base import clock
from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.base.names import current_user
from ptdesk.core.engine.box_zone import box_zone
from ptdesk.core.engine.locks import machine_gpu_lock
from ptdesk.core.gpu.ledger import parse_request
from ptdesk.core.kinds import get_kind
from ptdesk.core.sharing import records
from ptdesk.core.sharing.reservations import (
    LABEL_RESERVATION,
    PAST_KEPT,
    Reservation,
    moment_text,
    of,
    overlapping,
    parse_end,
    parse_when,
    record_labels,
    record_name,
)
from ptdesk.errors import Conflict, GpuUnavailable, ImageMissing, InvalidInput, NotFound

if TYPE_CHECKING:
    from ptdesk.core.site import Site

GPUS_HINT = "Name GPU indices (0,2), a count (any:2) or the whole box (all)."


def zone_of(site: Site) -> tzinfo | None:
    """The workstation's time zone: this machine's for the local engine (None), the box's over ssh://."""
    return box_zone(site.engine) if site.is_remote else None


def reservations(site: Site, now: float | None = None) -> list[Reservation]:
    """Every reservation on this workstation (every person's), by start time. Those that ended
    more than PAST_KEPT ago are removed on the way, by whoever lists (ptdesk watch does every few
    seconds): they decide nothing any more (no lock needed), and would pile up on the engine."""
    now = clock.now() if now is None else now
    labels = {LABEL_RESERVATION: "1", LABEL_INSTANCE: site.config.instance}
    tz = zone_of(site)
    found = [r for r in (of(c, tz) for c in records.list_labelled(site.engine, labels)) if r is not None]
    for old in [r for r in found if r.end <= now - PAST_KEPT]:
        site.engine.remove(old.id, force=True)  # one someone else's ptdesk removed first is no error
    return sorted((r for r in found if r.end > now - PAST_KEPT), key=lambda r: (r.start, r.gpus))


def record_image(site: Site) -> str:
    """An image the engine has, to make record containers (and the lock) from: ptdesk's ssh image."""
    image = get_kind("ssh").image(site.config)
    if not site.engine.image_exists(image):
        raise ImageMissing(f"Image {image} is not on this engine (reservations are kept as containers of it).",
                           "Build it with: ptdesk images build ssh")
    return image


def reserve(site: Site, gpus: str, start: str, end: str, owner: str | None = None,
            now: float | None = None) -> Reservation:
    """Book GPUs from `start` to `end` as typed; one sentence (and nothing made) for bad input."""
    now = clock.now() if now is None else now
    owner, tz = owner or current_user(), zone_of(site)
    begin = now if (start or "now").strip().lower() == "now" else parse_when(start, now, "a start time", tz)
    finish = parse_end(end, begin, now, tz)
    if finish <= begin:
        raise InvalidInput(f"The end ({moment_text(finish, tz)}) is not after the start ({moment_text(begin, tz)}).",
                           "Give an end later than the start, or a length such as 4h.")
    if begin < now - 60:
        raise InvalidInput(f"The start ({moment_text(begin, tz)}) is in the past: the past cannot be booked.",
                           "Start now or later (--from now).")
    begin = max(begin, now)
    inventory = site.gpu_inventory()
    devices = sorted(g.index for g in inventory.gpus) if inventory.available else []
    if not devices:
        reason = (inventory.reason or "none was found").rstrip(".")
        raise GpuUnavailable(f"This workstation has no GPU to reserve: {reason}.")
    image = record_image(site)
    with machine_gpu_lock(site.engine, image, site.config.gpu_lock_wait):
        booked = reservations(site)
        chosen = _pick(gpus, devices, booked, begin, finish)
        site.engine.create(name=record_name(), image=image, labels=record_labels(
            site.config.instance, chosen, begin, finish, owner), command=["true"], host_config={"network_mode": "none"})
    return next(r for r in reservations(site) if r.gpus == chosen and r.start == round(begin, 3) and r.owner == owner)


def _pick(text: str, devices: list[int], booked: list[Reservation], start: float, end: float) -> tuple[int, ...]:
    request = parse_request(text)
    if request.mode in ("none", "auto") and not getattr(request, "count", 0):
        raise InvalidInput(f"{text!r} names no GPUs to reserve.", GPUS_HINT)
    count = getattr(request, "count", 0) or 0
    if request.mode == "ids" or request.mode == "all":
        wanted = request.ids if request.mode == "ids" else tuple(devices)
        for index in wanted:
            if index not in devices:
                raise GpuUnavailable(f"There is no GPU {index}: this workstation has GPUs {_list(devices)}.",
                                     GPUS_HINT)
        clash = overlapping(booked, wanted, start, end)
        if clash:
            raise Conflict(f"GPU {sorted(set(wanted) & set(clash[0].gpus))[0]} is reserved by "
                           f"{clash[0].describe()} in that time.", "Pick other GPUs or another time; "
                           "see: ptdesk reservations")
        return tuple(wanted)
    if count > len(devices):
        raise GpuUnavailable(f"This workstation has {len(devices)} GPUs, fewer than the {count} asked for.", GPUS_HINT)
    free = [i for i in devices if not overlapping(booked, (i,), start, end)]
    if len(free) < count:
        holders = ", ".join(sorted({r.describe() for r in overlapping(booked, devices, start, end)}))
        raise Conflict(f"Only {len(free)} GPU(s) are free in that time (reserved by {holders}).",
                       "Ask for fewer, or another time; see: ptdesk reservations")
    return tuple(free[:count])


def _find(site: Site, ident: str) -> Reservation:
    matches = [r for r in reservations(site) if r.id.startswith(ident.strip().lower())] if ident.strip() else []
    if len(matches) != 1:
        raise NotFound(f"No reservation {ident!r} on this workstation." if not matches else
                       f"{ident!r} names more than one reservation.", "The ids are in: ptdesk reservations")
    return matches[0]


def _own(found: Reservation, owner: str) -> None:
    if found.owner != owner:
        raise Conflict(f"Reservation {found.short_id} is {found.owner}'s: only they can change it.",
                       f"Ask {found.owner}.")


def cancel(site: Site, ident: str, owner: str | None = None, now: float | None = None) -> Reservation:
    """Remove a reservation that has not started yet."""
    now = clock.now() if now is None else now
    with machine_gpu_lock(site.engine, record_image(site), site.config.gpu_lock_wait):
        found = _find(site, ident)
        _own(found, owner or current_user())
        if found.end <= now:
            raise Conflict(f"Reservation {found.short_id} ({found.when()}) is over: "
                           "the past cannot be edited.")
        if found.start <= now:
            raise Conflict(f"Reservation {found.short_id} has started: it can be ended now, not cancelled.",
                           f"End it: ptdesk reservations end {found.short_id}")
        site.engine.remove(found.id, force=True)
    return found


def end_now(site: Site, ident: str, owner: str | None = None, now: float | None = None) -> Reservation:
    """Shorten a started reservation to end now (its record is made again: labels cannot change)."""
    now = clock.now() if now is None else now
    image = record_image(site)
    with machine_gpu_lock(site.engine, image, site.config.gpu_lock_wait):
        found = _find(site, ident)
        _own(found, owner or current_user())
        if found.end <= now:
            raise Conflict(f"Reservation {found.short_id} is over already: the past cannot be edited.")
        if found.start > now:
            raise Conflict(f"Reservation {found.short_id} has not started: cancel it instead.",
                           f"ptdesk reservations cancel {found.short_id}")
        site.engine.create(name=record_name(), image=image, labels=record_labels(
            site.config.instance, found.gpus, found.start, now, found.owner), command=["true"],
            host_config={"network_mode": "none"})
        site.engine.remove(found.id, force=True)
    return Reservation(id=found.id, gpus=found.gpus, start=found.start, end=now, owner=found.owner, tz=found.tz)


def _list(devices: list[int]) -> str:
    return ", ".join(map(str, devices))
