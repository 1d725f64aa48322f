"""A remote workstation's sampler writes lines ptdesk reads (issue 20, finding 7): whoever controls
that box controls them. Escape sequences (OSC 52 writes the reader's clipboard) are shown made
printable, a line of the wrong shape is skipped without ending the feed, and a line that never ends
cannot grow ptdesk's memory."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest

from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.engine.client import Engine
from ptdesk.core.gpu import wire
from ptdesk.core.gpu.remote import SamplerFeed
from tests.support.helpers import BASE_IMAGE, require_image, wait_until

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # "put `rm -rf ~` on the clipboard"


def _line(**fields: object) -> bytes:
    return json.dumps({"v": wire.WIRE_VERSION, "available": False, "gpus": [], **fields}).encode()


def test_strings_from_the_wire_are_made_printable_and_cut() -> None:
    gpu = {"index": 0, "uuid": f"GPU-{OSC52}", "name": "A100" * 1000, "error": "\x9b2J",
           "processes": [{"pid": 7, "used_memory": None, "container": "\x1b[2J", "owner": "eve\x1b]0;x\x07"}]}
    snapshot = wire.decode(_line(reason=f"box says {OSC52}", driver="550\x1b[8m", gpus=[gpu]))
    [sample] = snapshot.gpus
    texts = [snapshot.reason, snapshot.driver, sample.uuid, sample.name, sample.error,
             sample.processes[0].container, sample.processes[0].owner]
    for text in texts:
        assert text is not None and text.isprintable(), repr(text)
    assert snapshot.reason == "box says ?]52;c;cm0gLXJmIH4K?" and len(sample.name) == wire.MAX_TEXT


@pytest.mark.parametrize("fields", [
    {"gpus": [1]},
    {"gpus": [{"index": "0", "uuid": "GPU-0", "name": "A100"}]},
    {"gpus": [{"index": 0, "uuid": ["GPU-0"], "name": "A100"}]},
    {"gpus": [{"index": 0, "uuid": "GPU-0", "name": "A100", "processes": {"pid": 1}}]},
    {"gpus": [{"index": 0, "uuid": "GPU-0", "name": "A100", "processes": [{"pid": 1, "used_memory": 1,
                                                                              "kind": "miner"}]}]},
    {"gpus": [{"index": 1e400, "uuid": "GPU-0", "name": "A100"}]},
    {"reason": {"text": "not a string"}},
    {"driver": 550},
    {"gpus": [{"index": i, "uuid": "x", "name": "y"} for i in range(wire.MAX_GPUS + 1)]},
], ids=["gpu-not-object", "index-string", "uuid-list", "processes-object", "unknown-kind", "huge-number",
        "reason-object", "driver-number", "too-many-gpus"])
def test_a_line_of_the_wrong_shape_is_a_value_error(fields: dict) -> None:
    with pytest.raises(ValueError):
        wire.decode(_line(**fields))


def test_deep_nesting_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        wire.decode(b"[" * 200_000)


def test_a_good_snapshot_survives_the_round_trip() -> None:
    snapshot = GpuSnapshot(True, None, "550.54", (GpuSample(0, "GPU-1", "A100", power=71.5, mig_mode=False,
                                                            processes=(GpuProcess(9, None, kind="graphics"),)),),
                           taken_at=1.5)
    assert wire.decode(wire.encode(snapshot)) == snapshot


def test_a_line_that_never_ends_is_dropped_whole_and_memory_stays_bounded() -> None:
    reader = wire.LineReader(limit=1024)
    assert reader.feed(b"first\nsec") == [b"first"]
    for _ in range(1024):  # 1 MiB without a newline, in 1 KiB chunks
        assert reader.feed(b"x" * 1024) == []
        assert len(reader._pending) <= 1024
    assert reader.feed(b"tail of the long line\nnext\nlast") == [b"next"]
    assert reader.feed(b"\n") == [b"last"]


def _crafted_sampler(engine: Engine, tag: str, lines: bytes) -> None:
    """An image that writes `lines` as a sampler would, then waits for its stdin to close."""
    dockerfile = (f"FROM {BASE_IMAGE}\nCOPY lines /lines\n"
                  'CMD ["sh", "-c", "cat /lines; exec cat >/dev/null"]\n').encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("lines", lines)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine.build(buffer.getvalue(), tag, {}, lambda _line: None)


def test_the_feed_survives_crafted_lines_from_a_real_sampler_container(engine: Engine,
                                                                      ptdesk_env: dict[str, str]) -> None:
    require_image(engine, BASE_IMAGE)
    tag = f"ptdesk-test/crafted-sampler:{uuid.uuid4().hex[:10]}"
    lines = b"\n".join([
        _line(gpus=[1]),  # the wrong type that used to end the reader thread
        b"{" + b"x" * (1 << 20),  # 1 MiB with no newline ...
        _line(reason="not part of any line"),  # ... whose end is this one: dropped with it
        _line(reason=f"box says {OSC52}", driver="550\x1b[2J"),
    ]) + b"\n"
    _crafted_sampler(engine, tag, lines)
    feed = SamplerFeed(engine, ptdesk_env["PTDESK_INSTANCE"], tag)
    try:
        latest = wait_until(lambda: feed.latest if feed.latest and feed.latest.driver else None, timeout=30,
                            message="the last crafted line to arrive")
        assert latest.reason == "box says ?]52;c;cm0gLXJmIH4K?" and latest.driver == "550?[2J"
        assert feed.alive and feed.error is None
    finally:
        feed.close()
        wait_until(lambda: not engine.api.containers(all=True, filters={"ancestor": tag}), timeout=30,
                   message="the sampler container to go")
        engine.api.remove_image(tag, noprune=False)
