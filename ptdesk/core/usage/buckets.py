"""The usage history's format: per GPU, per five-minute slot, who held it and how it was used.

One *day file* per recorder and UTC day: a string table (holders as experiment, owner, image;
reservers as a person's name), the day's totals per holder and per reserver, then fixed-size bucket
records, all zlib-compressed (the head first, so a whole day's totals are read without the rest).
A bucket is 19 bytes before compression; an idle, unheld, unreserved GPU writes none. The totals
let a year's report read 365 small summaries per box instead of every bucket; a day that has files
from more than one recorder (two `ptdesk watch` on one box, or one restarted) is merged bucket by
bucket, each (GPU, slot, holder) counted once — the bucket seen longest wins, nothing is ever added
twice. Pure: no engine, no NVML.
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
    head = (MAGIC + struct.pack("<IHHI", day.day, len(strings), len(totals), len(records)) + table
            + b"".join(TOTAL.pack(i, *t) for i, t in sorted(totals.items())))
    return zlib.compress(head + b"".join(records), 6)


class Unreadable(ValueError):
    """A day file that is not one (cut short, or not ptdesk's): skipped, the others still count."""


HEAD_FIRST = 16 * 1024  # what is decompressed first: the strings and totals of a day are a few KiB
BODY_LIMIT = 8 * 1024 * 1024  # a day file never decompresses beyond this (a full day is under 64 KiB)


@dataclass
class Decoded:
    """A day file read back: its strings (index 0 is "nobody") and totals per string at once; the
    bucket records only when asked (a whole day in a report needs its totals alone)."""

    day: int
    strings: tuple[str | None, ...]
    totals: dict[int, tuple[int, int, int, int, int]]
    data: bytes = field(repr=False)
    head_size: int = 0
    n_records: int = 0
    _records: bytes | None = field(default=None, repr=False)

    @property
    def records(self) -> bytes:
        if self._records is None:
            try:
                body = zlib.decompressobj().decompress(self.data, BODY_LIMIT)
            except zlib.error as exc:
                raise Unreadable(str(exc)) from None
            self._records = body[self.head_size:self.head_size + self.n_records * RECORD.size]
            if len(self._records) != self.n_records * RECORD.size:
                raise Unreadable("cut short")
        return self._records

    def buckets(self) -> Iterable[Bucket]:
        for gpu, slot, h, r, seen, held, idle, busy, unused, mem in RECORD.iter_unpack(self.records):
            holder = self.strings[h]
            yield Bucket(gpu, slot, tuple(holder.split(SEP)) if holder else None,  # type: ignore[arg-type]
                         self.strings[r], seen, held, idle, busy, unused, mem * MEMORY_UNIT)


def _head(body: bytes) -> tuple[int, list[str | None], dict, int, int]:
    if body[:4] != MAGIC:
        raise Unreadable("not a usage day file")
    day, n_strings, n_totals, n_records = struct.unpack_from("<IHHI", body, 4)
    at, strings = 16, [None]
    for _ in range(n_strings):
        (length,) = struct.unpack_from("<H", body, at)
        if at + 2 + length > len(body):
            raise struct.error("cut short")
        strings.append(body[at + 2:at + 2 + length].decode())
        at += 2 + length
    chunk = body[at:at + n_totals * TOTAL.size]
    if len(chunk) != n_totals * TOTAL.size:
        raise struct.error("cut short")
    totals = {t[0]: t[1:] for t in TOTAL.iter_unpack(chunk)}
    return day, strings, totals, at + len(chunk), n_records


def decode(data: bytes) -> Decoded:
    """The head of a day file (strings, totals); Unreadable when it is not one."""
    try:
        try:
            parsed = _head(zlib.decompressobj().decompress(data, HEAD_FIRST))
        except struct.error:  # a head longer than the first piece: read it all
            parsed = _head(zlib.decompressobj().decompress(data, BODY_LIMIT))
    except (zlib.error, struct.error, UnicodeDecodeError) as exc:
        raise Unreadable(str(exc)) from None
    day, strings, totals, head_size, n_records = parsed
    return Decoded(day, tuple(strings), totals, data, head_size, n_records)


def merged(files: Iterable[Decoded]) -> dict[tuple, Bucket]:
    """Several recorders' buckets of one day, each (GPU, slot, holder) once: the one seen longest."""
    out: dict[tuple, Bucket] = {}
    for f in files:
        try:
            f.records  # noqa: B018 - decompressed here, so a damaged file is skipped whole
        except Unreadable:
            continue
        for b in f.buckets():
            kept = out.get(b.key)
            if kept is None or b.seen_s > kept.seen_s:
                out[b.key] = b
    return out
