"""Engine-wide locks, shared by every user's ptdesk and every store: the GPU allocation lock and
the lock that makes the experiments' network once.

GPUs are the machine's, not one user's: a launch that asks for GPUs holds the GPU lock from reading
the holds (its records and every container's ptdesk.gpus label) until its own container exists
with its label, which is how the other users' ledgers see the reservation. The engine's check for
a duplicate network name is best effort, so the first launches that make the experiments' network
at the same moment take turns under the network lock.

A lock is kept by the Docker engine itself, not in a file: it is a created, never started
container with a fixed name (`ptdesk.gpu-lock`, `ptdesk.network-lock`: experiment containers are
`ptdesk-NAME`, so no experiment can be called like a lock). Creating a name the engine already has fails
atomically, so exactly one launch holds it; removing it (by id) releases it. A lock file in
world-writable /run/lock could be held, or made unopenable, by any local user, including ones who
may not use the engine at all: every GPU launch on the machine then hung. Only those who can use
the engine can touch this lock, and they are root-equivalent anyway (they could stop any
container). It also lives where the GPUs are: with an ssh:// workstation, on that machine's engine.

Waiting is bounded (`gpu_lock_wait`): the error then names who holds it (their labels: user, pid,
host) and since when (the engine's creation time, which labels cannot fake). A holder that died
(its pid gone on this host, or held far longer than any launch takes) is cleared and the lock taken.
A container of a lock's name without ptdesk's lock label is someone else's: it is never removed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ptdesk.core.base.names import current_user
from ptdesk.core.base.times import parse_time
from ptdesk.core.base.waiting import next_delay
from ptdesk.core.engine.client import Engine
from ptdesk.core.host.processes import pid_alive
from ptdesk.errors import Conflict, PtdeskError

LABEL_LOCK = "ptdesk.lock"
# A launch holds the lock for the seconds it takes to create its container: one held for longer
# than this was left by a launcher that died where its pid cannot be checked (another host).
STALE_AFTER = 300.0


class GpuLockBusy(PtdeskError):
    """Someone else held an engine lock for longer than this launch may wait."""


@dataclass(frozen=True)
class EngineLock:
    """One lock on an engine: its container's name, its label value, and what to call it."""

    name: str
    purpose: str
    title: str


# One of each per engine: every instance, user and store shares them.
GPU_LOCK = EngineLock("ptdesk.gpu-lock", "gpus", "The machine's GPU lock")
NETWORK_LOCK = EngineLock("ptdesk.network-lock", "network", "The lock on making the experiments' network")
GPU_LOCK_NAME = GPU_LOCK.name


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as its labels say, and since when, as the engine says."""

    container_id: str
    user: str
    uid: str
    pid: int
    host: str
    boot_id: str
    since: float | None

    def describe(self, now: float) -> str:
        held = f", for {now - self.since:.0f} s" if self.since else ""
        return f"{self.user or 'someone'} (uid {self.uid or '?'}, pid {self.pid or '?'} on {self.host or '?'}{held})"


def machine_gpu_lock(engine: Engine, image: str, wait: float = 60.0) -> AbstractContextManager[None]:
    """Hold the engine-wide GPU lock; GpuLockBusy after `wait` seconds of someone else holding it.

    `image`: an image the engine has (the launch's own) to create the lock container from.
    """
    return engine_lock(engine, GPU_LOCK, image, wait)


@contextmanager
def engine_lock(engine: Engine, lock: EngineLock, image: str, wait: float = 60.0) -> Iterator[None]:
    """Hold `lock` on `engine`; GpuLockBusy after `wait` seconds of someone else holding it."""
    lock_id = _acquire(engine, lock, image, wait)
    try:
        yield
    finally:
        engine.remove(lock_id, force=True)


def _acquire(engine: Engine, lock: EngineLock, image: str, wait: float) -> str:
    started = time.monotonic()
    deadline = started + wait
    while True:
        try:
            return engine.create(name=lock.name, image=image, labels=_labels(lock), command=["true"],
                                 host_config={"network_mode": "none"})
        except Conflict:
            pass  # held: see by whom
        holder = holder_of(engine, lock)
        if holder is None:
            continue  # released between our create and the look: try again at once
        if _is_stale(holder):
            engine.remove(holder.container_id, force=True)  # by id: never a newer holder's lock
            continue
        if time.monotonic() >= deadline:
            # Its holder may have changed meanwhile (several took turns): say how long this waited.
            raise GpuLockBusy(
                f"{lock.title} has been busy for the {wait:.0f} s a launch waits (held now by "
                f"{holder.describe(time.time())}).",
                f"Try again when their launch is done. If that process is gone, remove the lock: "
                f"docker rm -f {lock.name}")
        time.sleep(next_delay(time.monotonic() - started))  # wait for the holder's remove


def holder_of(engine: Engine, lock: EngineLock = GPU_LOCK) -> Holder | None:
    data = engine.try_inspect(lock.name)
    if data is None:
        return None
    labels = (data.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_LOCK) != lock.purpose:
        raise PtdeskError(f"A container named {lock.name} is on the engine but is not ptdesk's lock.",
                          f"Rename or remove it (docker rename {lock.name} NEW-NAME); ptdesk needs that name.")
    try:
        pid = int(labels.get(f"{LABEL_LOCK}.pid") or 0)
    except ValueError:
        pid = 0
    return Holder(container_id=data["Id"], user=labels.get(f"{LABEL_LOCK}.user", ""),
                  uid=labels.get(f"{LABEL_LOCK}.uid", ""), pid=pid, host=labels.get(f"{LABEL_LOCK}.host", ""),
                  boot_id=labels.get(f"{LABEL_LOCK}.boot", ""), since=parse_time(data.get("Created")))


def _is_stale(holder: Holder, now: float | None = None) -> bool:
    """Left by a launcher that is gone: its pid no longer runs on this very boot of this host, or
    it was held far longer than a launch takes. A live holder is never taken over."""
    now = time.time() if now is None else now
    if holder.since is not None and now - holder.since > STALE_AFTER:
        return True
    if holder.pid <= 0 or holder.host != socket.gethostname() or holder.boot_id != boot_id():
        return False  # another machine's (or an unreadable label): only age can tell
    return not pid_alive(holder.pid)


def _labels(lock: EngineLock) -> dict[str, str]:
    return {LABEL_LOCK: lock.purpose, f"{LABEL_LOCK}.user": current_user(), f"{LABEL_LOCK}.uid": str(os.getuid()),
            f"{LABEL_LOCK}.pid": str(os.getpid()), f"{LABEL_LOCK}.host": socket.gethostname(),
            f"{LABEL_LOCK}.boot": boot_id()}


def boot_id() -> str:
    """This boot of this machine: a pid of an earlier boot may be someone else's process now."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
