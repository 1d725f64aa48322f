"""The usage history's size and the report's time for a simulated year of ten 8-GPU workstations.

Each box's year is simulated bucket by bucket, as the recorder writes them (ptdesk.core.usage):
each GPU runs one experiment after another (owner one of 25 people, 1-48 hours, an image of 6),
is free between them (0-12 hours), sometimes reserved; busy at a utilisation that drifts, idle
while held now and then; memory peaks vary. Every day file is then encoded as `ptdesk watch`
writes it, and the report is computed for the whole year of the ten boxes:

- **report**: `figures_of` as `ptdesk report --since 365d` runs it (whole days from their totals);
- **raw aggregation** (baseline, same run): the same figures from every bucket of every day (what
  a day written by two recorders, or cut by the range, costs; what a format without totals costs);
- **read the files** (baseline, same run): decompressing every day file whole, nothing parsed or
  summed — what any format that keeps the buckets costs just to be read.

Sizes are the bytes the box's history holds (the day files; the engine's tar framing adds ~1 KiB
per file), against the raw bound of 19 bytes per bucket with every GPU held all year.

    .venv/bin/python bench/usage_history.py [--boxes 10] [--gpus 8] [--days 365] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ptdesk.core.usage.buckets import RECORD, SLOT, SLOTS_PER_DAY, Bucket, DayFile, decode, encode  # noqa: E402
from ptdesk.core.usage.report import figures_of, to_json  # noqa: E402

PEOPLE = [f"person{i:02d}" for i in range(25)]
IMAGES = [f"registry.example/team/{name}:2026.{i}" for i, name in enumerate(
    ("pytorch", "jax", "jupyter", "llm-train", "vision", "rl"))]


def simulate_box(rng: random.Random, gpus: int, days: int) -> dict[int, DayFile]:
    """One box's year of buckets (day number from 0)."""
    files = {d: DayFile(d) for d in range(days)}
    total_slots = days * SLOTS_PER_DAY
    for gpu in range(gpus):
        at, run = 0, 0
        while at < total_slots:
            at += rng.randint(0, 12 * 12)  # free for up to 12 hours
            length = rng.randint(12, 48 * 12)
            owner, image = rng.choice(PEOPLE), rng.choice(IMAGES)
            holder = (f"exp-{owner}-{run}", owner, image)
            reserver = rng.choice(PEOPLE) if rng.random() < 0.1 else None
            util, memory = rng.uniform(0.2, 1.0), rng.randint(4, 80) * 1024**3
            for slot in range(at, min(at + length, total_slots)):
                idle = rng.random() < 0.15
                util = min(1.0, max(0.0, util + rng.uniform(-0.05, 0.05)))
                busy = 0.0 if idle else SLOT * util
                unused = SLOT if reserver and reserver != owner else 0.0
                day = files[slot // SLOTS_PER_DAY]
                b = Bucket(gpu, slot % SLOTS_PER_DAY, holder, reserver, SLOT, SLOT, SLOT if idle else 0.0,
                           busy, unused, memory)
                day.buckets[b.key] = b
            at += length
            run += 1
    return files


def timed(fn, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raw-rounds", type=int, default=1, help="rounds of the (slow) raw aggregation")
    args = parser.parse_args()
    rng = random.Random(24)
    started = time.perf_counter()
    stored: dict[str, list[bytes]] = {}
    buckets = 0
    for box in range(args.boxes):
        files = simulate_box(rng, args.gpus, args.days)
        buckets += sum(len(f.buckets) for f in files.values())
        stored[f"box{box}"] = [encode(f) for f in files.values()]
    made = time.perf_counter() - started
    size = sum(len(d) for days in stored.values() for d in days)
    raw_bound = args.boxes * args.gpus * args.days * SLOTS_PER_DAY * RECORD.size
    start, end = 0.0, args.days * 86400.0

    def read_only() -> int:
        return sum(len(zlib.decompress(d)) for days in stored.values() for d in days)

    def report() -> dict:
        out = [figures_of(box, (decode(d) for d in days), start, end) for box, days in stored.items()]
        return _together(out, start, end)

    def raw() -> dict:  # every bucket summed
        out = [figures_of(box, (decode(d) for d in days), start, end, use_totals=False) for box, days in stored.items()]
        return _together(out, start, end)

    t_read, _ = timed(read_only, args.rounds)
    t_report, fast = timed(report, args.rounds)
    t_raw, slow = timed(raw, args.raw_rounds)
    same = _held(fast) == _held(slow)
    print(f"simulated {args.boxes} boxes x {args.gpus} GPUs x {args.days} days: {buckets:,} buckets "
          f"({buckets / (args.boxes * args.gpus * args.days * SLOTS_PER_DAY):.0%} of GPU-slots held), "
          f"made in {made:.0f} s")
    print(f"history size: {size:,} bytes in {sum(len(v) for v in stored.values()):,} day files "
          f"({size / args.boxes / 1024**2:.2f} MiB per box, {size / buckets:.2f} bytes per bucket); "
          f"raw bound with every GPU held all year: {raw_bound:,} bytes ({size / raw_bound:.1%} of it)")
    print(f"report of the whole range (median of {args.rounds}): {t_report:.3f} s; raw aggregation of every bucket: "
          f"{t_raw:.3f} s ({args.raw_rounds} round); reading the files whole: {t_read:.3f} s")
    print(f"report / raw aggregation: {t_report / t_raw:.3f}x; report / reading the files: {t_report / t_read:.3f}x; "
          f"same held figures both ways: {same}")


def _together(figures: list, start: float, end: float) -> dict:
    first = figures[0]
    for other in figures[1:]:
        first.add(other)
    return to_json(first, start, end, {})


def _held(document: dict) -> dict:
    return {p["person"]: round(p["held_gpu_hours"], 1) for p in document["people"]}


if __name__ == "__main__":
    main()
