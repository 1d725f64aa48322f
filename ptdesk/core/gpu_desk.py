"""The front ends' door to GPU sharing on one workstation: the queue, admission, reservations,
and whether anything on the box admits while nobody's ptdesk is open (the box's `ptdesk watch`).

`ptdesk watch` announces itself on the engine with a never-started marker container (labels: user,
pid, host; removed when it stops): `ptdesk queue` can then say plainly when nothing on the box
admits queued requests. A marker left by a watcher that died on this host is recognised by its pid.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator, MutableSet
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.base.names import current_user
from ptdesk.core.host.processes import pid_alive
from ptdesk.errors import Conflict, NotFound

if TYPE_CHECKING:
    from ptdesk.core.notify.herald import Said
    from ptdesk.core.sharing.enforcement import Enforced
    from ptdesk.core.sharing.gpu_queue import QueueEntry
    from ptdesk.core.sharing.reservations import Reservation
    from ptdesk.core.sharing.when_free import Wish
    from ptdesk.core.workstation import Workstation

LABEL_ADMITTER = "ptdesk.admitter"


@dataclass(frozen=True)
class Admitter:
    user: str
    pid: int
    host: str

    def describe(self) -> str:
        return f"ptdesk watch of {self.user} (pid {self.pid} on {self.host})"


class GpuDesk:
    """GPU sharing on one Workstation."""

    def __init__(self, ws: Workstation) -> None:
        self.ws = ws

    # --- the queue ----------------------------------------------------------------------------
    def queue(self, now: float | None = None) -> list[QueueEntry]:
        from ptdesk.core.sharing import queue_view
        return queue_view.queue(self.ws, now=now)

    def admit(self, now: float | None = None) -> list[str]:
        from ptdesk.core.sharing import admission
        return admission.admit(self.ws, now=now)

    def cancel(self, name: str) -> QueueEntry:
        """Take one's own request out of the queue. A new launch's container, record and secrets
        go (it never ran); a stopped experiment filed again stays, stopped, with all it had."""
        from ptdesk.core.experiments import operations
        from ptdesk.core.sharing import gpu_start
        from ptdesk.core.sharing.gpu_queue import QUEUED
        entry = next((e for e in self.queue() if e.name == name), None)
        if entry is None:
            raise NotFound(f"No queued request named {name!r} on this workstation.", "See them with: ptdesk queue")
        record = self.ws.store.experiment(name)
        if record is None or record.status != QUEUED or record.container_id != entry.container_id:
            raise Conflict(f"{name!r} is {entry.owner}'s request: only they can cancel it.", f"Ask {entry.owner}.")
        if entry.had is not None:
            gpu_start.unqueue(self.ws, name, entry.container_id, entry.had)
            return entry
        operations.release(self.ws, name, if_container=entry.container_id)
        self.ws.engine.remove(entry.container_id, force=True)
        self.ws.store.audit("queue-cancelled", name, {"gpus": entry.request})
        return entry

    def admitters(self) -> list[Admitter]:
        """The box's running `ptdesk watch` services (markers whose process is gone are skipped)."""
        from ptdesk.core.sharing import records
        found = []
        for container in records.list_labelled(self.ws.engine, {LABEL_ADMITTER: "1",
                                                                        LABEL_INSTANCE: self.ws.config.instance}):
            labels = container.get("Labels") or {}
            pid_text = labels.get(f"{LABEL_ADMITTER}.pid") or ""
            pid = int(pid_text) if pid_text.isascii() and pid_text.isdigit() else 0
            host = labels.get(f"{LABEL_ADMITTER}.host", "")
            if host == socket.gethostname() and not pid_alive(pid):
                continue
            found.append(Admitter(labels.get(f"{LABEL_ADMITTER}.user", "?"), pid, host))
        return found

    @contextmanager
    def announced(self) -> Iterator[None]:
        """While `ptdesk watch` runs: its marker on the engine."""
        from ptdesk.core.sharing import booking, records
        labels = {LABEL_ADMITTER: "1", LABEL_INSTANCE: self.ws.config.instance,
                  f"{LABEL_ADMITTER}.user": current_user(), f"{LABEL_ADMITTER}.pid": str(os.getpid()),
                  f"{LABEL_ADMITTER}.host": socket.gethostname()}
        marker = records.create_record(self.ws.engine, f"ptdesk.admitter-{secrets.token_hex(6)}",
                                              booking.record_image(self.ws), labels)
        try:
            yield
        finally:
            self.ws.engine.remove(marker, force=True)

    def wait_started(self, name: str, timeout: float | None = None, every: float = 1.0) -> bool:
        """Block until queued `name` runs (admitting whenever GPUs free); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            self.ws.reconcile()  # admits when GPUs are free, then takes the admitted container over
            record = self.ws.store.experiment(name)
            if record is None:
                raise NotFound(f"{name!r} left the queue without starting (cancelled or removed).")
            if record.status == "running":
                return True
            time.sleep(every)
        return False

    # --- reservations -------------------------------------------------------------------------
    def reservations(self) -> list[Reservation]:
        from ptdesk.core.sharing import booking
        return booking.reservations(self.ws)

    def time_zone(self) -> tzinfo | None:
        """The workstation's zone, in which reservation times are typed and shown (None: this machine's)."""
        from ptdesk.core.sharing import booking
        return booking.zone_of(self.ws)

    def reserve(self, gpus: str, start: str, end: str, now: float | None = None) -> Reservation:
        from ptdesk.core.sharing import booking
        return booking.reserve(self.ws, gpus, start, end, now=now)

    def cancel_reservation(self, ident: str, now: float | None = None) -> Reservation:
        from ptdesk.core.sharing import booking
        return booking.cancel(self.ws, ident, now=now)

    def end_reservation(self, ident: str, now: float | None = None) -> Reservation:
        from ptdesk.core.sharing import booking
        return booking.end_now(self.ws, ident, now=now)

    def enforce_reservations(self, warned: MutableSet[tuple[str, str]], now: float | None = None) -> list[Enforced]:
        """Warn, then after the grace stop, others' experiments on GPUs whose reservation started."""
        from ptdesk.core.sharing import enforcement
        return enforcement.enforce(self.ws, warned, now)

    def heads_up(self, now: float | None = None) -> list[Said]:
        """Ten minutes' notice: this person's reservations starting or ending, and their experiments
        on GPUs another person reserved (said once per box; ptdesk watch runs this)."""
        from ptdesk.core.sharing import heads_up
        return heads_up.heads_up(self.ws, now)

    def when_free(self, gpus: str) -> Wish:
        """Hear once when `gpus` (indices, any:N) are free for this person here."""
        from ptdesk.core.sharing import when_free
        return when_free.wish(self.ws, gpus)

    def tell_when_free(self, now: float | None = None) -> list[Said]:
        """Say the wishes whose GPUs are free now (ptdesk watch runs this)."""
        from ptdesk.core.sharing import when_free
        return when_free.tell(self.ws, now)

    def gpu_indices(self) -> list[int]:
        inventory = self.ws.gpu_inventory()
        return sorted(g.index for g in inventory.gpus) if inventory.available else []
