"""The machine-wide GPU lock cannot be held hostage by a local user: it is kept by the engine (a
created container with a fixed name), not in world-writable /run/lock; a launch waits for it a
bounded time and then names who holds it."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk.core.engine import locks
from ptdesk.core.engine.client import Engine
from ptdesk.errors import PtdeskError
from tests.support.helpers import BASE_IMAGE, REPO, SSH_IMAGE, require_image

OLD_LOCK = Path("/run/lock/ptdesk-gpus.lock")  # where every GPU launch used to queue
MALLORY = 4242


@pytest.fixture
def no_lock(engine: Engine) -> Iterator[None]:
    require_image(engine, BASE_IMAGE)
    engine.remove(locks.GPU_LOCK_NAME, force=True)
    yield
    engine.remove(locks.GPU_LOCK_NAME, force=True)


def _hold_as(engine: Engine, user: str, pid: int) -> str:
    """What another user's ptdesk (or anyone on the engine) holding the lock looks like."""
    labels = {locks.LABEL_LOCK: "gpus", "ptdesk.lock.user": user, "ptdesk.lock.uid": str(MALLORY),
              "ptdesk.lock.pid": str(pid), "ptdesk.lock.host": socket.gethostname(),
              "ptdesk.lock.boot": Path("/proc/sys/kernel/random/boot_id").read_text().strip()}
    return engine.create(name=locks.GPU_LOCK_NAME, image=BASE_IMAGE, labels=labels, command=["true"],
                         host_config={"network_mode": "none"})


def _launch(env: dict[str, str], name: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A launch that takes the GPU lock (naming a GPU: "auto" skips it on a machine without GPUs)."""
    script = Path(sys.executable).parent / "ptdesk"
    return subprocess.run([str(script), "new", "ssh", "--name", name, "--gpus", "0", "--json"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_a_held_lock_file_in_run_lock_no_longer_hangs_gpu_launches(
        engine: Engine, ptdesk_env: dict[str, str], no_lock: None) -> None:
    """The old attack: another uid makes /run/lock/ptdesk-gpus.lock 0600 and holds a flock on it."""
    require_image(engine, SSH_IMAGE)
    made = not OLD_LOCK.exists()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys\n"
        f"os.setgid({MALLORY}); os.setuid({MALLORY})\n" if made else "import fcntl, os, sys\n") + (
        f"fd = os.open({str(OLD_LOCK)!r}, os.O_RDONLY | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        probe = os.open(OLD_LOCK, os.O_RDONLY)
        with pytest.raises(BlockingIOError):  # it really is held
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(probe)
        proc = _launch(ptdesk_env, "gpu-free", timeout=90)  # the old code never came back
        # It got past the lock: what it says now is about GPU 0 itself (there is none here, or it
        # is given), never about the lock.
        assert "lock" not in proc.stderr.lower() and "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 0 or "GPU" in proc.stderr, proc.stderr
    finally:
        holder.communicate("", timeout=10)
        if made:
            OLD_LOCK.unlink(missing_ok=True)


def test_a_lock_held_by_someone_else_is_waited_for_a_bounded_time_and_names_them(
        engine: Engine, ptdesk_env: dict[str, str], no_lock: None) -> None:
    require_image(engine, SSH_IMAGE)
    alive = subprocess.Popen(["sleep", "600"])
    try:
        _hold_as(engine, "mallory", alive.pid)
        home = Path(ptdesk_env["PTDESK_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text("gpu_lock_wait = 2\n")
        began = time.monotonic()
        proc = _launch(ptdesk_env, "waits", timeout=60)
        assert time.monotonic() - began < 30
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "mallory" in lines[0] and f"pid {alive.pid}" in lines[0] and "2 s" in lines[0]
        assert f"docker rm -f {locks.GPU_LOCK_NAME}" in lines[1]
        instance = ptdesk_env["PTDESK_INSTANCE"]
        assert engine.api.containers(all=True, filters={"label": f"ptdesk.instance={instance}"}) == []
    finally:
        alive.kill()
        alive.wait()


def test_a_lock_left_by_a_dead_launcher_is_cleared(engine: Engine, no_lock: None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = _hold_as(engine, "mallory", dead.pid)
    with locks.machine_gpu_lock(engine, BASE_IMAGE, wait=5):
        holder = locks.holder_of(engine)
        assert holder is not None and holder.container_id != stale and holder.pid == os.getpid()
    assert locks.holder_of(engine) is None  # released


def test_the_lock_excludes_a_second_holder(engine: Engine, no_lock: None) -> None:
    with (locks.machine_gpu_lock(engine, BASE_IMAGE, wait=5),
          pytest.raises(locks.GpuLockBusy, match=f"pid {os.getpid()}"),
          locks.machine_gpu_lock(engine, BASE_IMAGE, wait=0.3)):
        pass
    with locks.machine_gpu_lock(engine, BASE_IMAGE, wait=1):
        pass


def test_a_container_that_only_has_the_locks_name_is_never_taken_for_it(engine: Engine, no_lock: None) -> None:
    """Someone's own container called like the lock, ancient or not, is theirs: it is not removed
    as a stale lock, and the launch says what to do instead of waiting."""
    theirs = engine.create(name=locks.GPU_LOCK_NAME, image=BASE_IMAGE, labels={}, command=["true"],
                           host_config={"network_mode": "none"})
    with (pytest.raises(PtdeskError, match="not ptdesk's lock") as caught,
          locks.machine_gpu_lock(engine, BASE_IMAGE, wait=5)):
        pass
    assert "docker rename" in (caught.value.hint or "")
    assert engine.try_inspect(locks.GPU_LOCK_NAME)["Id"] == theirs
