"""ptdesk.core.engine.logs on real containers: lines from frames, bounded batches, closing."""

from __future__ import annotations

import threading

from ptdesk.core.engine.logs import LogBatch, LogStream
from tests.support.helpers import wait_until


class Collector:
    def __init__(self) -> None:
        self.batches: list[LogBatch] = []
        self.lock = threading.Lock()

    def __call__(self, batch: LogBatch) -> None:
        with self.lock:
            self.batches.append(batch)

    @property
    def lines(self) -> list[str]:
        with self.lock:
            return [line for b in self.batches for line in b.lines]

    @property
    def ended(self) -> LogBatch | None:
        with self.lock:
            return next((b for b in self.batches if b.ended), None)


def test_lines_are_split_from_frames_and_follow(engine, sleeper):
    cid = sleeper("frames", script="echo one; printf 'two-'; sleep 0.5; printf 'joined\\nthree\\n'; sleep 3600")
    got = Collector()
    stream = LogStream.for_container(engine, cid, got, tail=100).start()
    try:
        wait_until(lambda: got.lines == ["one", "two-joined", "three"], timeout=15, message=f"lines {got.lines}")
    finally:
        stream.close()
    wait_until(lambda: got.ended, timeout=5, message="the final batch after close")
    stream.join()
    assert not any(t.is_alive() for t in stream._threads)


def test_a_flood_stays_bounded_and_keeps_the_newest(engine, sleeper):
    cid = sleeper("flood", script="seq 1 60000; echo done; sleep 3600")
    got = Collector()
    stream = LogStream.for_container(engine, cid, got, tail="all", max_lines=500).start()
    try:
        wait_until(lambda: "done" in got.lines, timeout=30, message="the last line")
    finally:
        stream.close()
    assert all(len(b.lines) <= 500 for b in got.batches)
    delivered = len(got.lines)
    dropped = sum(b.dropped for b in got.batches)
    assert dropped > 0 and delivered + dropped == 60001  # every line is either shown or counted
    assert got.lines[-2:] == ["60000", "done"]


def test_stream_ends_when_the_container_dies(engine, sleeper):
    cid = sleeper("dies", script="echo bye; sleep 1")
    got = Collector()
    LogStream.for_container(engine, cid, got, tail=10, alive_check_after=0.5,
                            is_alive=lambda: bool(engine.inspect(cid)["State"]["Running"])).start()
    ended = wait_until(lambda: got.ended, timeout=20, message="the end of the stream")
    assert "bye" in got.lines
    assert ended.reason and "stopped" in ended.reason
