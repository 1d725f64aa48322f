"""The Fleet: every workstation asked in parallel, a dead or silent one never holding up the others,
and `--on auto` choosing where a GPU is free (NVML scenarios at the pynvml boundary; no GPU here)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.fleet import Fleet
from ptdesk.errors import InvalidInput
from tests.support.nvml_scenarios import healthy, installed, no_driver


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts and then says nothing (a hung box: no SSH banner ever)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def home_with(tmp_path: Path, tables: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(tables)
    return {"PTDESK_HOME": str(home), "PTDESK_INSTANCE": "t-fleet"}


def test_a_dead_and_a_silent_workstation_never_hold_up_the_others(tmp_path: Path, silent_port: int) -> None:
    env = home_with(tmp_path, '[workstations.gone]\nengine = "ssh://nobody@127.0.0.1:1"\n'
                              f'[workstations.hung]\nengine = "ssh://nobody@127.0.0.1:{silent_port}"\n')
    fleet = Fleet(load_config(env))
    try:
        started = time.monotonic()
        answers = fleet.each(lambda ws: ws.engine_version() if ws.is_remote else ws.name, deadline=2.0)
        took = time.monotonic() - started
    finally:
        fleet.close()
    assert took < 3.0, took
    by_name = {a.workstation: a for a in answers}
    assert [a.workstation for a in answers] == ["local", "gone", "hung"]
    assert by_name["local"].value == "local" and by_name["local"].ok
    assert by_name["gone"].error.message == "Workstation gone: 127.0.0.1:1 is unreachable (Connection refused)."
    assert by_name["hung"].error.message == "Workstation hung did not answer within 2 s."


def test_an_unknown_workstation_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="There is no workstation 'nope'"):
        Fleet(load_config(home_with(tmp_path, "")), ["nope"])


def test_auto_picks_a_free_gpu_and_says_why(tmp_path: Path) -> None:
    env = home_with(tmp_path, '[workstations.gone]\nengine = "ssh://nobody@127.0.0.1:1"\n')
    fleet = Fleet(load_config(env))
    try:
        with installed(healthy(gpus=2)):  # GPU 0 runs a process, GPU 1 is free
            choice = fleet.choose("auto")
            # GPU 1 has 78 of 80 GiB free, GPU 0 only 70: the emptiest one, and the sentence says so.
            assert (choice.workstation, choice.reason) == ("local", "GPU 1: 78 GiB free, 5% busy")
            with pytest.raises(InvalidInput, match=r"No workstation can give GPUs 0,1,2 now") as caught:
                fleet.choose("0,1,2")
            # named once, and no ".)." where the sentences join
            assert "; gone: 127.0.0.1:1 is unreachable (Connection refused))." in caught.value.message
        assert fleet.choose("none").workstation == "local"  # no GPU asked for: the default
        with installed(no_driver()):
            with pytest.raises(InvalidInput, match="No workstation can give GPU 0 now"):
                fleet.choose("0")
            # auto launches without a GPU when none is free: on the default workstation, saying why.
            fallback = fleet.choose("auto")
            assert fallback.workstation == "local" and fallback.reason.startswith(
                "no free GPU anywhere, so the default workstation, without a GPU: local: ")
    finally:
        fleet.close()


def test_errors_on_a_remote_name_it_and_never_the_local_socket() -> None:
    from ptdesk.core.fleet import naming
    from ptdesk.errors import EngineUnavailable, NotFound

    local = EngineUnavailable("Listing containers: the Docker engine at unix:///var/run/docker.sock is not "
                              "reachable.", "Start the Docker engine.")
    assert naming(local, "local") is local
    remote = naming(local, "gpu2")
    assert remote.message == "Workstation gpu2: Listing containers: its Docker engine does not answer over SSH."
    assert remote.hint == "Check it with: ptdesk workstations test gpu2" and remote.exit_code == 3
    other = naming(NotFound("No experiment 'x'.", "ptdesk ls"), "gpu2")
    assert type(other) is NotFound and other.message == "Workstation gpu2: No experiment 'x'."
    assert naming(other, "gpu2") is other  # named once
