"""Follow one container's log in a background thread and hand it over in bounded line batches.

The engine's stream yields byte frames, not lines, and a chatty container can write tens of
thousands of lines a second. So: one thread reads frames and splits lines into a bounded buffer;
a second hands the buffer over every `interval` seconds (0.25 s: smooth to read, cheap to draw).
When more lines arrive in one interval than the viewer keeps, only the newest are kept and the
batch says how many were skipped — memory stays flat however fast the container writes.

The stream ends when `close()` is called (the view closed, the selection moved on, the container
died: `follow` can hang after the container exits, so whoever sees the `die` event closes it), when
the engine ends it, or when `is_alive` says the container is gone after a quiet spell.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ptdesk.errors import PtdeskError

MAX_LINE_BYTES = 16 * 1024  # a line without a newline for this long is cut (binary garbage, progress bars)


@dataclass(frozen=True)
class LogBatch:
    lines: tuple[str, ...]
    dropped: int = 0  # lines skipped because more arrived in one interval than are kept
    ended: bool = False  # the last batch of this stream
    reason: str | None = None  # why it ended, for the viewer ("container stopped", an engine error)


class LogStream:
    """A running follow of one container's log; start() it, close() it (idempotent, any thread)."""

    def __init__(self, open_stream: Callable[[], Iterable[bytes]], on_batch: Callable[[LogBatch], None], *,
                 interval: float = 0.25, max_lines: int = 2000,
                 is_alive: Callable[[], bool] | None = None, alive_check_after: float = 2.0) -> None:
        self._open = open_stream
        self._on_batch = on_batch
        self._interval = interval
        self._pending: deque[str] = deque(maxlen=max_lines)
        self._dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader_done = threading.Event()
        self._stream: Iterable[bytes] | None = None
        self._reason: str | None = None
        self._is_alive = is_alive
        self._alive_check_after = alive_check_after
        self._last_data = time.monotonic()
        self._threads: list[threading.Thread] = []

    @classmethod
    def for_container(cls, engine, container_id: str, on_batch: Callable[[LogBatch], None], *,
                      tail: int = 200, **options) -> LogStream:
        """Follow a container through the Engine: the last `tail` lines first, then new ones."""
        return cls(lambda: engine.logs(container_id, tail=tail, follow=True), on_batch, **options)

    def start(self) -> LogStream:
        for target, name in ((self._read, "ptdesk-log-reader"), (self._deliver, "ptdesk-log-batcher")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self, reason: str | None = None) -> None:
        """Stop following: closes the engine's stream (unblocking the reader) from any thread."""
        if reason and not self._reason:
            self._reason = reason
        self._stop.set()
        self._close_stream()

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    # --- threads ---------------------------------------------------------------------------
    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        close = getattr(stream, "close", None)
        if close is None:
            return
        # docker-py's CancellableStream shuts the socket down: safe from another thread. Already
        # closed or half-open means nothing is left to release.
        with contextlib.suppress(Exception):
            close()

    def _read(self) -> None:
        partial = b""
        try:
            stream = self._open()
            self._stream = stream
            if self._stop.is_set():  # closed while the request was in flight
                self._close_stream()
                return
            for frame in stream:
                if self._stop.is_set():
                    break
                self._last_data = time.monotonic()
                partial += frame
                *lines, partial = partial.split(b"\n")
                if len(partial) > MAX_LINE_BYTES:
                    lines.append(partial)
                    partial = b""
                if lines:
                    decoded = [line.decode(errors="replace").rstrip("\r") for line in lines]
                    with self._lock:
                        overflow = len(self._pending) + len(decoded) - (self._pending.maxlen or 0)
                        if overflow > 0:
                            self._dropped += overflow
                        self._pending.extend(decoded)
            if partial and not self._stop.is_set():
                with self._lock:
                    self._pending.append(partial.decode(errors="replace"))
            if not self._reason and not self._stop.is_set():
                self._reason = "the log ended (the container stopped)"
        except PtdeskError as exc:
            self._reason = exc.message
        except Exception as exc:  # noqa: BLE001 - a socket closed under us is the normal way to stop
            if not self._stop.is_set():
                self._reason = f"reading the log failed ({exc})"
        finally:
            self._close_stream()
            self._reader_done.set()

    def _take(self, ended: bool) -> LogBatch | None:
        with self._lock:
            if not self._pending and not self._dropped and not ended:
                return None
            batch = LogBatch(tuple(self._pending), self._dropped, ended, self._reason if ended else None)
            self._pending.clear()
            self._dropped = 0
        return batch

    def _deliver(self) -> None:
        while not self._stop.is_set() and not self._reader_done.is_set():
            self._stop.wait(self._interval)
            batch = self._take(ended=False)
            if batch is not None:
                self._on_batch(batch)
            elif self._is_alive and time.monotonic() - self._last_data > self._alive_check_after:
                # Quiet for a while: make sure the container is still there (follow may hang).
                self._last_data = time.monotonic()
                try:
                    alive = self._is_alive()
                except Exception:  # noqa: BLE001 - engine trouble: the reader will notice on its own
                    alive = True
                if not alive:
                    self.close("the container stopped")
        self._reader_done.wait(2.0)
        final = self._take(ended=True)
        if final is not None:
            self._on_batch(final)
