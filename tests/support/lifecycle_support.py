"""Helpers for the lifecycle, fault, concurrency and soak suites: a real `ptdesk watch` subprocess,
direct (read-only or test-only) views of the state database, and a private Docker engine that a
test may stop and start without disturbing anyone else's containers on the shared engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import REPO, wait_until

STATE = "state.db"


def ptdesk_command() -> list[str]:
    script = Path(sys.executable).parent / "ptdesk"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ptdesk.cli"]


class Watch:
    """`ptdesk watch --json` as a real subprocess; its JSON lines are collected by a reader thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([*ptdesk_command(), "watch", "--json"], env=env, cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        self._errors: list[str] = []  # stderr, drained as it comes: a full pipe would block the watcher
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._error_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._error_reader.start()

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._errors.append(line)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"type": "text", "text": line})

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "a watch line") -> dict:
        """The first line (seen before or arriving within timeout) that satisfies predicate."""
        def found() -> dict | None:
            while True:
                try:
                    self.seen.append(self.lines.get_nowait())
                except queue.Empty:
                    break
            return next((line for line in self.seen if predicate(line)), None)

        return wait_until(found, timeout=timeout, interval=0.05, message=what)

    def wait_engine(self, up: bool, after: int = 0, timeout: float = 30.0) -> dict:
        return self.wait_for(lambda line: line.get("type") == "engine" and line.get("up") is up
                             and self.seen.index(line) >= after, timeout, f"engine up={up}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            with contextlib.suppress(queue.Empty):
                while True:
                    self.seen.append(self.lines.get_nowait())
            raise AssertionError(f"ptdesk watch did not stop within {timeout:.0f} s of SIGTERM; it said "
                                 f"{self.seen[-8:]}; stderr: {self.stderr()[-2000:]!r}") from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def stderr(self) -> str:
        """What it wrote to stderr (all of it once it has ended)."""
        if self.proc.poll() is not None:
            self._error_reader.join(timeout=5)
        return "".join(self._errors)


@contextmanager
def watching(env: dict[str, str]) -> Iterator[Watch]:
    watch = Watch(env)
    try:
        watch.wait_engine(True)
        yield watch
    finally:
        watch.stop()


def db(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / STATE, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def record(home: Path, name: str) -> dict | None:
    conn = db(home)
    try:
        row = conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def hold_gpus(home: Path, name: str, gpus: list[int]) -> None:
    """There is no GPU here: simulate a reservation the way the launcher records one."""
    conn = db(home)
    try:
        conn.execute("UPDATE experiments SET gpus = ? WHERE name = ?", (json.dumps(gpus), name))
        conn.commit()
    finally:
        conn.close()


def held_gpus(home: Path) -> dict[int, str]:
    conn = db(home)
    try:
        rows = conn.execute("SELECT name, gpus FROM experiments").fetchall()
        return {g: r["name"] for r in rows for g in json.loads(r["gpus"])}
    finally:
        conn.close()


def docker(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# --- a private engine ------------------------------------------------------------------------------

@dataclass
class PrivateEngine:
    """A second dockerd with its own socket, data, exec root and bridge (the shared one stays up)."""

    root: Path
    bridge: str
    subnet: str
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def start(self) -> None:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - lives as long as the daemon
        self.proc = subprocess.Popen(
            ["dockerd", "-H", self.host, "--data-root", str(self.root / "data"), "--exec-root",
             str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"), f"--bridge={self.bridge}",
             "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_until(lambda: subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode == 0,
                   timeout=60, interval=0.2, message="the private dockerd to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def private_engine_available() -> str | None:
    """Why a private engine cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run a second dockerd"
    if not shutil.which("dockerd") or not shutil.which("ip"):
        return "dockerd or ip(8) is not installed"
    return None


@contextmanager
def private_engine(images: tuple[str, ...]) -> Iterator[PrivateEngine]:
    # Unix socket paths must stay short (108 bytes): keep it directly under /tmp.
    root = Path(tempfile.mkdtemp(prefix="ptd-eng-", dir="/tmp"))
    tag = uuid.uuid4().hex[:6]
    octet = int(tag[:2], 16) % 200 + 20
    engine = PrivateEngine(root=root, bridge=f"ptd{tag}", subnet=f"10.213.{octet}.1/24")
    subprocess.run(["ip", "link", "add", engine.bridge, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", engine.subnet, "dev", engine.bridge], check=True)
        subprocess.run(["ip", "link", "set", engine.bridge, "up"], check=True)
        engine.start()
        for image in images:
            save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=engine.env, check=True,
                           capture_output=True)
            save.wait()
        yield engine
    finally:
        if engine.proc and engine.proc.poll() is None:
            subprocess.run(["docker", "rm", "-f", *docker("ps", "-aq", env=engine.env, check=False).split()],
                           env=engine.env, capture_output=True)
            # Its networks too: a stopped dockerd leaves their bridges on the host, and a later private
            # engine's network on the same subnet then lost its traffic to the stale one.
            subprocess.run(["docker", "network", "prune", "-f"], env=engine.env, capture_output=True)
        engine.stop()
        subprocess.run(["ip", "link", "del", engine.bridge], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
