"""A launch asks the engine each thing once, and its login proof logs in the moment sshd answers.

Every engine request of a launch is on the person's wait (each costs the engine 2–20 ms), so what
cannot change within one launch — the engine's info, the image's inspect — is read once and passed
along. The requests are counted by watching the real client's transport, not by replacing it.
The banner look the login proof polls with is tried against real local servers, and the CLI's
launch leaves the cyclic collector on, as it found it.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ptdesk.core.access.sshcheck import answering
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from tests.e2e.conftest import Ptdesk


def test_a_launch_reads_the_engine_info_and_the_image_once(ws: Workstation, engine: Engine,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    api = ws.engine.api
    asked: list[tuple[str, str]] = []
    send = api.send

    def counted(request, **kwargs):  # type: ignore[no-untyped-def]
        asked.append((request.method, request.path_url.split("?")[0]))
        return send(request, **kwargs)

    monkeypatch.setattr(api, "send", counted)
    launched = ws.launch(ws.make_spec("ssh", name="counted"))
    assert launched.experiment.status == "running"
    info = [path for method, path in asked if path.endswith("/info")]
    images = [path for method, path in asked if "/images/" in path]
    assert len(info) == 1, asked  # the spec's box limits and the workspace rule's data root: one read
    # The check's inspect serves the recorded image id, its fingerprint and the launch's warnings;
    # the listing that answers the launch reads it once more.
    assert len(images) <= 2, images
    assert not [path for path in images if "/images/sha256:" in path], images


def test_a_cli_launch_has_the_engine_info_read_while_the_reconcile_runs(ws: Workstation,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`ptdesk new` and `ptdesk run` call expect_launch first: a thread of its own reads the info at
    once (the engine's ~10 ms to answer overlap the reconcile), and the launch's own reads wait for
    that answer instead of asking again."""
    api = ws.engine.api
    asked: list[tuple[str, str]] = []
    send = api.send

    def counted(request, **kwargs):  # type: ignore[no-untyped-def]
        asked.append((threading.current_thread().name, request.path_url.split("?")[0]))
        return send(request, **kwargs)

    monkeypatch.setattr(api, "send", counted)
    ws.expect_launch()
    ws.reconcile()
    launched = ws.launch(ws.make_spec("ssh", name="ahead"))
    assert launched.experiment.status == "running"
    info = [who for who, path in asked if path.endswith("/info")]
    assert info == ["ptdesk-engine-info"], asked


@contextmanager
def server(greeting: bytes | None) -> Iterator[int]:
    """A local TCP server on a free port that sends `greeting` to each connection (None: closes
    it at once, as the engine's proxy does while nothing listens in the container)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                if greeting is not None:
                    conn.sendall(greeting)
                    conn.recv(1)  # hold it open until the client is done

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_the_banner_look_leaves_the_banner_for_the_login() -> None:
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"
    with server(banner) as port:
        sock = answering("127.0.0.1", port, 2.0)
        assert sock is not None
        with sock:
            assert sock.recv(len(banner)) == banner  # paramiko reads the whole banner over it


@pytest.mark.parametrize("greeting", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"], ids=["closed at once", "not ssh"])
def test_the_banner_look_says_no_server_yet(greeting: bytes | None) -> None:
    with server(greeting) as port:
        assert answering("127.0.0.1", port, 2.0) is None
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert answering("127.0.0.1", port, 1.0) is None  # nothing listens: refused


def test_the_collector_is_on_again_after_a_cli_launch_or_a_mistake(cli: Ptdesk) -> None:
    """`ptdesk new` runs its start-up with the cyclic collector off: it must be on again once the
    launch returns (a --queue --wait may then wait for hours) and after a command that failed
    (in-process callers, like the resident or a test run, go on living)."""
    assert gc.isenabled()
    code, _, err = cli.run("new", "ssh", "--cpus", "many")
    assert code == 2 and "many" in err
    assert gc.isenabled()
    cli.json("new", "ssh", "--name", "collected")  # in-process, as the dashboard's own process would
    assert gc.isenabled()
