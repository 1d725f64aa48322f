"""A job's record: what ran, on what, how it ended — kept in the person's ptdesk home after the
container is gone (PTDESK_HOME/jobs/NAME/record.json, 0600 in 0700 folders), until `jobs --prune`.

The container is the job while it lives (queued, running: the store's experiment record and the
engine say so); the record keeps what a person asks afterwards: status, exit code, times, GPUs,
GPU-hours, peak GPU memory, the log, and everything `ptdesk rerun` needs (the snapshot and the options).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.base import clock
from ptdesk.core.base.private_files import ensure_private_dir, write_secret

RECORD = "record.json"
LOG = "log"
SNAPSHOT = "code.tar"
ENDED = ("succeeded", "failed", "timed out", "cancelled")


@dataclass(frozen=True)
class JobRecord:
    name: str
    owner: str
    command: tuple[str, ...]
    submitted: float
    workstation: str = "local"
    image: str = ""
    gpus_request: str = "none"
    options: dict = field(default_factory=dict)  # what `rerun` submits again (the typed options)
    time_limit: float | None = None
    grace: float = 10.0
    workspace: str | None = None
    output: str | None = None  # the output folder, as the host sees it
    snapshot: dict = field(default_factory=dict)  # folder, files, bytes, git_commit, git_dirty
    sweep: str | None = None  # the sweep it belongs to (its first job's name) and its values
    sweep_values: dict = field(default_factory=dict)
    like: str | None = None  # the experiment whose environment it ran in
    env_fingerprint: str | None = None
    job_image: str | None = None  # an image made for --like, removed with the record
    status: str = "submitted"  # until the container says (queued, running) or it ended
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    gpus: tuple[int, ...] = ()
    cancel_requested: bool = False
    leftover: tuple[str, ...] = ()  # processes of the job still on its GPUs after it ended
    peak_gpu_memory: int | None = None  # bytes: the most its processes held at once, as sampled while it ran

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        if self.finished is None and not self.ended:
            return max(0.0, clock.now() - self.started)  # running: so far
        return max(0.0, (self.finished or self.started) - self.started)

    @property
    def gpu_hours(self) -> float:
        return len(self.gpus) * (self.duration or 0.0) / 3600

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(duration=self.duration, gpu_hours=round(self.gpu_hours, 6), command=list(self.command),
                    gpus=list(self.gpus), leftover=list(self.leftover))
        return data

    @classmethod
    def from_json(cls, data: dict) -> JobRecord:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("command", "gpus", "leftover"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def folder(config: Config, name: str) -> Path:
    return config.home / "jobs" / name


def save(config: Config, record: JobRecord) -> None:
    write_secret(folder(config, record.name) / RECORD, json.dumps(record.to_json(), indent=1).encode())


def load(config: Config, name: str) -> JobRecord | None:
    try:
        return JobRecord.from_json(json.loads((folder(config, name) / RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def update(config: Config, name: str, **changes: object) -> JobRecord | None:
    record = load(config, name)
    if record is None:
        return None
    record = replace(record, **changes)  # type: ignore[arg-type]
    save(config, record)
    return record


def all_records(config: Config) -> list[JobRecord]:
    root = config.home / "jobs"
    if not root.is_dir():
        return []
    found = (load(config, path.name) for path in sorted(root.iterdir()) if path.is_dir())
    return sorted((r for r in found if r is not None), key=lambda r: r.submitted)


def make_folder(config: Config, name: str) -> Path:
    return ensure_private_dir(folder(config, name))


def discard(config: Config, name: str) -> None:
    shutil.rmtree(folder(config, name), ignore_errors=True)
