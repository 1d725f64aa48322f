"""The usage history's format: per GPU, per five-minute slot, who held it and how it was used.

One *day file* per recorder and UTC day: a string table (holders as experiment, owner, image;
reservers as a person's name), fixed-size bucket records, and the day's totals per holder and per
reserver, all zlib-compressed. A bucket is 19 bytes before compression; an idle, unheld,
unreserved GPU writes none. The totals let a year's report read 365 small summaries per box
instead of every bucket; a day that has files from more than one recorder (two `ptdesk watch`
on one box, or one restarted) is merged bucket by bucket, each (GPU, slot) counted once — the
bucket seen longest wins, nothing is ever added twice. Pure: no engine, no NVML.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

SLOT = 300  # seconds per bucket
SLOTS_PER_DAY = 86400 // SLOT
MEMORY_UNIT = 16 * 1024 * 1024  # peak memory is kept in 16 MiB steps (u16: up to 1 TiB)
MAGIC = b"PTU1"
# gpu, slot, holder, reserver, seen_s, held_s, idle_held_s, busy_s, reserved_unused_s, memory_peak
RECORD = struct.Struct("<BHHHHHHHHH")
# per table entry: held_s, busy_s, idle_held_s, reserved_unused_s (u32 each), memory_peak (u16 units)
TOTAL = struct.Struct("<HIIIIH")
SEP = "\x1f"  # joins a holder's experiment, owner and image in the string table


@dataclass
class Bucket:
    """One GPU's five minutes. Seconds are sampled time: `seen_s` observed at all, `held_s` held by
    `holder`, `idle_held_s` held with nothing working on it, `busy_s` held time weighted by
    utilisation, `reserved_unused_s` reserved by `reserver` while that person did not hold it."""

    gpu: int
    slot: int
    holder: tuple[str, str, str] | None = None  # (experiment, owner, image)
    reserver: str | None = None
    seen_s: float = 0.0
    held_s: float = 0.0
    idle_held_s: float = 0.0
    busy_s: float = 0.0
    reserved_unused_s: float = 0.0
    memory_peak: int = 0  # bytes

    @property
    def key(self) -> tuple[int, int, tuple[str, str, str] | None]:
        """A GPU's slot has one bucket per holder it had in those five minutes (and one unheld)."""
        return (self.gpu, self.slot, self.holder)

    def worth_keeping(self) -> bool:
        return self.holder is not None or self.reserver is not None


@dataclass
class Totals:
    """Sums over buckets for one person, workstation or image."""

    held_s: float = 0.0
    busy_s: float = 0.0
    idle_held_s: float = 0.0
    reserved_unused_s: float = 0.0
    memory_peak: int = 0

    def add(self, other: Totals) -> None:
        self.held_s += other.held_s
        self.busy_s += other.busy_s
        self.idle_held_s += other.idle_held_s
        self.reserved_unused_s += other.reserved_unused_s
        self.memory_peak = max(self.memory_peak, other.memory_peak)


@dataclass
class DayFile:
    """One recorder's buckets of one UTC day (`day`: days since the epoch)."""

    day: int
    buckets: dict[tuple, Bucket] = field(default_factory=dict)


def _u16(value: float) -> int:
    return max(0, min(0xFFFF, round(value)))


def encode(day: DayFile) -> bytes:
    """The compressed bytes of a day file (strings, buckets, then totals per string)."""
    strings: dict[str, int] = {}

    def ident(text: str | None) -> int:
        if text is None:
            return 0
        return strings.setdefault(text, len(strings) + 1)

    records, totals = [], {}
    for b in sorted(day.buckets.values(), key=lambda b: (b.gpu, b.slot, b.holder or ())):
        if not b.worth_keeping():
            continue
        holder, reserver = ident(SEP.join(b.holder) if b.holder else None), ident(b.reserver)
        mem = -(-b.memory_peak // MEMORY_UNIT)
        records.append(RECORD.pack(b.gpu, b.slot, holder, reserver, _u16(b.seen_s), _u16(b.held_s),
                                   _u16(b.idle_held_s), _u16(b.busy_s), _u16(b.reserved_unused_s), min(mem, 0xFFFF)))
        if holder:
            t = totals.setdefault(holder, [0, 0, 0, 0, 0])
            t[0] += _u16(b.held_s)
            t[1] += _u16(b.busy_s)
            t[2] += _u16(b.idle_held_s)
            t[4] = max(t[4], min(mem, 0xFFFF))
        if reserver:
            totals.setdefault(reserver, [0, 0, 0, 0, 0])[3] += _u16(b.reserved_unused_s)
    table = b"".join(struct.pack("<H", len(s.encode())) + s.encode() for s in strings)
    body = (MAGIC + struct.pack("<IHI", day.day, len(strings), len(records)) + table + b"".join(records)
            + struct.pack("<H", len(totals)) + b"".join(TOTAL.pack(i, *t) for i, t in sorted(totals.items())))
    return zlib.compress(body, 6)


@dataclass(frozen=True)
class Decoded:
    """A day file read back: its strings (index 0 is "nobody"), raw records, totals per string."""

    day: int
    strings: tuple[str | None, ...]
    records: bytes
    totals: dict[int, tuple[int, int, int, int, int]]

    def buckets(self) -> Iterable[Bucket]:
        for gpu, slot, h, r, seen, held, idle, busy, unused, mem in RECORD.iter_unpack(self.records):
            holder = self.strings[h]
            yield Bucket(gpu, slot, tuple(holder.split(SEP)) if holder else None,  # type: ignore[arg-type]
                         self.strings[r], seen, held, idle, busy, unused, mem * MEMORY_UNIT)


class Unreadable(ValueError):
    """A day file that is not one (cut short, or not ptdesk's): skipped, the others still count."""


def decode(data: bytes, limit: int = 8 * 1024 * 1024) -> Decoded:
    try:
        body = zlib.decompressobj().decompress(data, limit)
        if body[:4] != MAGIC:
            raise Unreadable("not a usage day file")
        day, n_strings, n_records = struct.unpack_from("<IHI", body, 4)
        at, strings = 14, [None]
        for _ in range(n_strings):
            (length,) = struct.unpack_from("<H", body, at)
            strings.append(body[at + 2:at + 2 + length].decode())
            at += 2 + length
        records = body[at:at + n_records * RECORD.size]
        at += n_records * RECORD.size
        (n_totals,) = struct.unpack_from("<H", body, at)
        totals = {t[0]: t[1:] for t in TOTAL.iter_unpack(body[at + 2:at + 2 + n_totals * TOTAL.size])}
    except (zlib.error, struct.error, UnicodeDecodeError) as exc:
        raise Unreadable(str(exc)) from None
    if len(records) != n_records * RECORD.size or len(totals) != n_totals:
        raise Unreadable("cut short")
    return Decoded(day, tuple(strings), records, totals)


def merged(files: Iterable[Decoded]) -> dict[tuple, Bucket]:
    """Several recorders' buckets of one day, each (GPU, slot, holder) once: the one seen longest."""
    out: dict[tuple, Bucket] = {}
    for f in files:
        for b in f.buckets():
            kept = out.get(b.key)
            if kept is None or b.seen_s > kept.seen_s:
                out[b.key] = b
    return out
