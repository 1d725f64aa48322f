"""GPU snapshots as JSON lines: what a workstation's sampler container writes and ptdesk reads.

Flat and lossless (MIG rows stay rows, nothing nested but processes); fields ptdesk does not know
are dropped on reading, so a newer sampler image never breaks an older ptdesk.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields

from ptdesk.core.base.models import GpuProcess, GpuSample, GpuSnapshot

WIRE_VERSION = 1
_SAMPLE = {f.name for f in fields(GpuSample)} - {"processes"}
_PROCESS = {f.name for f in fields(GpuProcess)}


def encode(snapshot: GpuSnapshot) -> str:
    return json.dumps({"v": WIRE_VERSION, **asdict(snapshot)}, separators=(",", ":"))


def decode(line: str | bytes) -> GpuSnapshot:
    """One line back into a snapshot; ValueError for anything that is not one (the caller skips it)."""
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("v") != WIRE_VERSION or not isinstance(data.get("gpus"), list):
        raise ValueError("not a ptdesk GPU sample line")
    gpus = tuple(GpuSample(**{k: v for k, v in gpu.items() if k in _SAMPLE},
                           processes=tuple(GpuProcess(**{k: v for k, v in p.items() if k in _PROCESS})
                                           for p in gpu.get("processes") or ()))
                 for gpu in data["gpus"])
    return GpuSnapshot(available=bool(data.get("available")), reason=data.get("reason"), driver=data.get("driver"),
                       gpus=gpus, taken_at=float(data.get("taken_at") or 0.0))
