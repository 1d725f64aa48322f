"""The usage report: per person, workstation and image, GPU-hours held, busy, held while idle,
reserved but unused, jobs run and failed, and peak memory — from the boxes' histories.

A day wholly inside the range and written by one recorder is read from its totals (365 small
summaries for a year); a day cut by the range's ends, or written by several recorders, bucket by
bucket (ptdesk.core.usage.buckets.merged: each GPU's five minutes counted once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ptdesk.core.usage.buckets import MEMORY_UNIT, SEP, SLOT, Decoded, Totals, merged


@dataclass
class Figures:
    """One workstation's (or all of them together) figures for a range."""

    people: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    images: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    workstations: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))

    def add(self, other: Figures) -> None:
        for mine, theirs in ((self.people, other.people), (self.images, other.images),
                             (self.workstations, other.workstations)):
            for key, totals in theirs.items():
                mine[key].add(totals)


def _add_held(figures: Figures, workstation: str, holder: str, totals: Totals) -> None:
    _, owner, image = (holder.split(SEP) + ["?", "?"])[:3]
    for table, key in ((figures.people, owner), (figures.images, image), (figures.workstations, workstation)):
        table[key].add(totals)


def _add_unused(figures: Figures, workstation: str, person: str, unused: float) -> None:
    figures.people[person].reserved_unused_s += unused
    figures.workstations[workstation].reserved_unused_s += unused


def _from_totals(figures: Figures, workstation: str, day: Decoded) -> None:
    for index, (held, busy, idle, unused, memory) in day.totals.items():
        name = day.strings[index] or "?"
        if SEP in name:
            _add_held(figures, workstation, name, Totals(held, busy, idle, 0.0, memory * MEMORY_UNIT))
        elif unused:
            _add_unused(figures, workstation, name, unused)


def _from_buckets(figures: Figures, workstation: str, files: list[Decoded], start: float, end: float) -> None:
    for bucket in merged(files).values():
        moment = files[0].day * 86400 + bucket.slot * SLOT
        if not start <= moment < end:
            continue
        if bucket.holder is not None:
            _add_held(figures, workstation, SEP.join(bucket.holder), Totals(
                bucket.held_s, bucket.busy_s, bucket.idle_held_s, 0.0, bucket.memory_peak))
        if bucket.reserver and bucket.reserved_unused_s:
            _add_unused(figures, workstation, bucket.reserver, bucket.reserved_unused_s)


def figures_of(workstation: str, days: Iterable[Decoded], start: float, end: float,
               use_totals: bool = True) -> Figures:
    """One box's figures for [start, end) from its day files (ptdesk.core.usage.history.read_days).
    `use_totals` False sums every bucket even of whole days (the baseline bench/usage_history.py times)."""
    by_day: dict[int, list[Decoded]] = defaultdict(list)
    for day in days:
        by_day[day.day].append(day)
    figures = Figures()
    figures.workstations[workstation]  # a box that recorded nothing still has a row of zeros
    for number, files in sorted(by_day.items()):
        whole = start <= number * 86400 and (number + 1) * 86400 <= end
        if use_totals and whole and len(files) == 1:
            _from_totals(figures, workstation, files[0])
        else:
            _from_buckets(figures, workstation, files, start, end)
    return figures


HEADERS = ("held_gpu_hours", "busy_gpu_hours", "idle_held_gpu_hours", "reserved_unused_gpu_hours",
           "peak_memory_gib")


def hours(value: float) -> float:
    """GPU-hours to 4 places (0.36 s): the text rounds further, scripts get what was recorded."""
    return round(value / 3600, 4)


def row(totals: Totals) -> dict[str, float]:
    return {"held_gpu_hours": hours(totals.held_s), "busy_gpu_hours": hours(totals.busy_s),
            "idle_held_gpu_hours": hours(totals.idle_held_s),
            "reserved_unused_gpu_hours": hours(totals.reserved_unused_s),
            "peak_memory_gib": round(totals.memory_peak / 1024**3, 1)}


def to_json(figures: Figures, start: float, end: float, jobs: Mapping[str, tuple[int, int]]) -> dict:
    """The `ptdesk report --json` document (hours rounded to 0.01)."""
    people = sorted(set(figures.people) | set(jobs))
    return {"since": start, "until": end,
            "people": [{"person": p, **row(figures.people.get(p, Totals())),
                        "jobs_run": jobs.get(p, (0, 0))[0], "jobs_failed": jobs.get(p, (0, 0))[1]} for p in people],
            "workstations": [{"workstation": w, **row(t)} for w, t in sorted(figures.workstations.items())],
            "images": [{"image": i, **row(t)} for i, t in sorted(figures.images.items())]}
