"""A container that looks adoptable (ptdesk's labels, this user as owner) but holds a symlink or a
huge file where ptdesk reads its host key: `ptdesk reconcile` says so in one line instead of a
traceback, and `ptdesk watch` keeps watching instead of looping on "watching events failed"."""

from __future__ import annotations

import io
import os
import selectors
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from ptdesk.core.base.names import current_user
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.files import FileSpec
from ptdesk.errors import PtdeskError
from tests.support.helpers import BASE_IMAGE, REPO, require_image, run_cli

# The first file adoption reads: the sealed host key (whatever the seal label says, it is read to check it).
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


def _adoptable(engine: Engine, instance: str, name: str) -> str:
    """A created (never started) container with every label adoption wants, owned by this user: any
    engine user can make one (the forged seal is checked by reading the sealed file)."""
    labels = {"ptdesk.managed": "1", "ptdesk.instance": instance, "ptdesk.kind": "ssh",
              "ptdesk.owner": current_user(), "ptdesk.name": name, "ptdesk.gpus": "", "ptdesk.seal": "forged"}
    return engine.create(name=f"ptdesk-{instance}-{name}-{uuid.uuid4().hex[:6]}", image=BASE_IMAGE,
                         labels=labels, command=["true"], host_config={})


def _plant_symlink(engine: Engine, cid: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(HOST_KEY)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info)
    assert engine.api.put_archive(cid, "/", buffer.getvalue())


@pytest.fixture
def malformed(engine: Engine, ptdesk_env: dict[str, str]) -> dict[str, str]:
    require_image(engine, BASE_IMAGE)
    instance = ptdesk_env["PTDESK_INSTANCE"]
    linked = _adoptable(engine, instance, "linked")
    _plant_symlink(engine, linked)
    huge = _adoptable(engine, instance, "huge")
    engine.put_files(huge, "/", [FileSpec(HOST_KEY, b"ssh-ed25519 " + b"A" * (4 * 1024 * 1024), mode=0o644)])
    return {"linked": linked, "huge": huge}


def test_read_file_refuses_links_and_huge_files(engine: Engine, malformed: dict[str, str]) -> None:
    with pytest.raises(PtdeskError, match="not a regular file"):
        engine.read_file(malformed["linked"], "/" + HOST_KEY)
    with pytest.raises(PtdeskError, match="larger than"):
        engine.read_file(malformed["huge"], "/" + HOST_KEY)


def test_reconcile_names_the_malformed_containers_without_a_traceback(
        ptdesk_env: dict[str, str], malformed: dict[str, str]) -> None:
    rc, out, err = run_cli(["reconcile"], ptdesk_env, subprocess_=True)
    assert rc == 0, err
    assert "Traceback" not in out + err
    assert "linked" in out and "huge" in out  # listed as orphans, not adopted
    reasons = [line for line in err.splitlines() if "could not adopt" in line]
    assert len(reasons) == 2, err
    assert any("not a regular file" in line for line in reasons)
    assert any("larger than" in line for line in reasons)


def test_watch_keeps_watching_past_a_malformed_container(
        ptdesk_env: dict[str, str], malformed: dict[str, str], sleeper) -> None:
    script = Path(sys.executable).parent / "ptdesk"
    proc = subprocess.Popen([str(script), "watch"], env=ptdesk_env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = _read_until(proc, lambda text: "watching instance" in text and text.count("could not adopt") >= 2)
        sleeper("after-it")  # an event: a watcher stuck retrying its reconcile pass never shows it
        seen += _read_until(proc, lambda text: "after-it" in text)
        assert "watching events failed" not in seen and "Traceback" not in seen
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _read_until(proc: subprocess.Popen, done, timeout: float = 60.0) -> str:
    """Collect the watcher's stdout and stderr until `done(text)` holds (fails after `timeout`)."""
    selector = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        assert stream is not None
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    text, deadline = "", time.monotonic() + timeout
    try:
        while not done(text):
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"watch did not get there; it printed: {text!r}"
            for key, _ in selector.select(timeout=left):
                text += key.fileobj.read() or ""  # type: ignore[union-attr]
    finally:
        selector.close()
    return text
