"""GPU snapshots as JSON lines: what a workstation's sampler container writes and ptdesk reads.

Flat and lossless (MIG rows stay rows, nothing nested but processes); fields ptdesk does not know
are dropped on reading, so a newer sampler image never breaks an older ptdesk.

A line comes from another machine, so reading trusts nothing in it: every field is checked against
its type (a wrong one rejects the line, never the reader), strings are made printable and cut to a
sane length (an escape sequence such as OSC 52 would otherwise reach the terminal that shows it),
counts are bounded, and `LineReader` keeps at most MAX_LINE bytes of a line that never ends.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any, Literal, get_args, get_origin, get_type_hints

from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.base.text import printable

WIRE_VERSION = 1
MAX_LINE = 256 * 1024  # a real line of 8 GPUs with hundreds of processes is a few tens of KB
MAX_TEXT = 256
MAX_GPUS = 128  # physical GPUs and their MIG instances
MAX_PROCESSES = 4096
# Field -> its declared type (int | None, Literal[...], ...), what a line's value must be.
_SAMPLE = {name: hint for name, hint in get_type_hints(GpuSample).items() if name != "processes"}
_PROCESS = get_type_hints(GpuProcess)
_REQUIRED_SAMPLE = ("index", "uuid", "name")
_REQUIRED_PROCESS = ("pid", "used_memory")


def encode(snapshot: GpuSnapshot) -> str:
    return json.dumps({"v": WIRE_VERSION, **asdict(snapshot)}, separators=(",", ":"))


def decode(line: str | bytes) -> GpuSnapshot:
    """One line back into a snapshot; ValueError for anything that is not one (the caller skips it)."""
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    try:
        data = json.loads(line)
    except RecursionError:  # nested deeper than the parser goes: still just a bad line
        raise ValueError("nested too deep") from None
    if not isinstance(data, dict) or data.get("v") != WIRE_VERSION or not isinstance(data.get("gpus"), list):
        raise ValueError("not a ptdesk GPU sample line")
    if len(data["gpus"]) > MAX_GPUS:
        raise ValueError("too many GPUs")
    gpus = tuple(_sample(gpu) for gpu in data["gpus"])
    taken_at = _value(float | None, data.get("taken_at"))
    return GpuSnapshot(available=bool(data.get("available")),
                       reason=_value(str | None, data.get("reason")),
                       driver=_value(str | None, data.get("driver")), gpus=gpus, taken_at=taken_at or 0.0)


def _sample(gpu: Any) -> GpuSample:
    fields_ = _fields(gpu, _SAMPLE, _REQUIRED_SAMPLE)
    processes = gpu.get("processes") or []
    if not isinstance(processes, list) or len(processes) > MAX_PROCESSES:
        raise ValueError("processes is not a list of a sane length")
    return GpuSample(**fields_, processes=tuple(GpuProcess(**_fields(p, _PROCESS, _REQUIRED_PROCESS))
                                                for p in processes))


def _fields(item: Any, types: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(item, dict) or any(name not in item for name in required):
        raise ValueError("not an object with the required fields")
    return {name: _value(types[name], value) for name, value in item.items() if name in types}


def _value(hint: Any, value: Any) -> Any:
    """`value` if it is of the field's declared type (strings made printable and cut), else ValueError."""
    options = get_args(hint) if get_origin(hint) is not Literal else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options or (hint,):
        if get_origin(option) is Literal and value in get_args(option):
            return value
        if option is str and isinstance(value, str):
            return printable(value[:MAX_TEXT])
        if option is bool and isinstance(value, bool):
            return value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if option is int and number and abs(value) < 2**63 and float(value).is_integer():
            return int(value)
        if option is float and number and math.isfinite(value):
            return float(value)
    raise ValueError(f"{value!r} is not {hint}")


class LineReader:
    """Splits a byte stream into lines, keeping at most `limit` bytes of an unfinished one: a
    longer line is dropped whole (up to its newline), so a peer that never sends one cannot grow
    ptdesk's memory."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._pending = bytearray()
        self._dropping = False  # inside a line already found too long

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        parts = chunk.split(b"\n")
        for i, part in enumerate(parts):
            ends = i < len(parts) - 1  # a newline follows this part
            if self._dropping:
                self._dropping = not ends
                continue
            self._pending += part
            if len(self._pending) > self.limit:
                self._pending.clear()
                self._dropping = not ends
            elif ends:
                lines.append(bytes(self._pending))
                self._pending.clear()
        return lines
