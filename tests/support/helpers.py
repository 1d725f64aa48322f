"""Helpers shared by every test (`from tests.support.helpers import ...`; the repository root is on
pytest's path, see pyproject.toml).

- run_cli(args, env): the real `ptdesk` CLI, in-process (fast) or as a subprocess (exact).
- wait_until(predicate, timeout, interval): poll a condition instead of sleeping.
- settle(pilot, predicate, timeout): the same inside a running Textual app (it keeps running).
- remove_instance_containers(engine, instance): force-remove what one test created.
- require_image(engine, ref): a clear failure when scripts/test did not build an image.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from click.testing import CliRunner

from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.engine.client import Engine

REPO = Path(__file__).resolve().parents[2]
# Built by scripts/test FROM a debootstrapped Debian (no registry on test machines).
BASE_IMAGE = "ptdesk-test/debian-base:bookworm"
# The images under test: scripts/test-images builds these tags; PTDESK_TEST_*_IMAGE points the suite at
# others. Never ptdesk's own tags (ptdesk/ssh:latest...): on a workstation in use those are the team's.
SSH_IMAGE = os.environ.get("PTDESK_TEST_SSH_IMAGE") or "ptdesk-test/ssh:latest"
JUPYTER_IMAGE = os.environ.get("PTDESK_TEST_JUPYTER_IMAGE") or "ptdesk-test/jupyter:latest"
SAMPLER_IMAGE = os.environ.get("PTDESK_TEST_SAMPLER_IMAGE") or "ptdesk-test/gpu-sampler:latest"
CODE_IMAGE = os.environ.get("PTDESK_TEST_CODE_IMAGE") or "ptdesk-test/code:latest"
# What a test's ptdesk runs with: the images under test, whatever the developer's own settings say.
TEST_IMAGE_ENV = {"PTDESK_SSH_IMAGE": SSH_IMAGE, "PTDESK_JUPYTER_IMAGE": JUPYTER_IMAGE, "PTDESK_CODE_IMAGE": CODE_IMAGE,
                  "PTDESK_SAMPLER_IMAGE": SAMPLER_IMAGE}

T = TypeVar("T")


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None, *, subprocess_: bool = False,
            input: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run `ptdesk ARGS` with `env` as the whole environment; return (exit_code, stdout, stderr).

    In-process (CliRunner) by default. An exception the CLI did not turn into a PtdeskError is
    re-raised here, so a test can never mistake a crash for a clean non-zero exit.
    subprocess_=True runs the installed entry point exactly as a user would (slower, ~0.5 s).
    """
    args = [str(a) for a in args]
    if subprocess_:
        script = Path(sys.executable).parent / "ptdesk"  # the console script pip installed
        command = [str(script)] if script.exists() else [sys.executable, "-m", "ptdesk.cli"]
        proc = subprocess.run([*command, *args], env=dict(env or os.environ),
                              input=input, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        return proc.returncode, proc.stdout, proc.stderr
    from ptdesk.cli import main

    # CliRunner patches os.environ with these values; keys of os.environ absent from env are unset.
    overrides: dict[str, str | None] = {key: None for key in os.environ if env is not None and key not in env}
    overrides.update(env or {})
    result = CliRunner().invoke(main, args, env=overrides, input=input, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1,
               message: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as exc:  # predicates may assert; keep polling, report the last one
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {message}{detail}")
        time.sleep(interval)


def remove_instance_containers(engine: Engine, instance: str) -> list[str]:
    """Force-remove every container labelled ptdesk.instance=<instance>; returns their ids."""
    found = engine.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    for container in found:
        engine.remove(container["Id"], force=True)
    return [c["Id"] for c in found]


def require_image(engine: Engine, ref: str) -> str:
    """`ref` if the engine has it; otherwise fail saying how to build it (tests never build silently)."""
    if not engine.image_exists(ref):
        raise AssertionError(f"image {ref} is missing: run scripts/test, or "
                             f"scripts/test-images")
    return ref


def cgroup_tree(root: Path, containers: dict[str, dict[str, int]], btime: int = 1_700_000_000) -> tuple[Path, Path]:
    """Write cgroup v1 files (and the /proc bits for start times) for StatsSampler to read.

    containers: id -> {cpu_ns, memory, inactive, limit, pid, start_ticks}. Returns (cgroup root, proc root).
    """
    cgroup, proc = root / "cgroup", root / "proc"
    (proc).mkdir(parents=True, exist_ok=True)
    (proc / "stat").write_text(f"cpu  1 2 3 4\nbtime {btime}\n")
    for cid, v in containers.items():
        cpu, mem = cgroup / "cpuacct" / "docker" / cid, cgroup / "memory" / "docker" / cid
        cpu.mkdir(parents=True)
        mem.mkdir(parents=True)
        (cpu / "cpuacct.usage").write_text(f"{v['cpu_ns']}\n")
        (cpu / "cgroup.procs").write_text(f"{v['pid']}\n")
        (mem / "memory.usage_in_bytes").write_text(f"{v['memory']}\n")
        (mem / "memory.limit_in_bytes").write_text(f"{v['limit']}\n")
        (mem / "memory.stat").write_text(f"cache 0\ntotal_inactive_file {v['inactive']}\n")
        fields = ["S"] + ["0"] * 18 + [str(v["start_ticks"])] + ["0"] * 10
        (proc / str(v["pid"])).mkdir()
        (proc / str(v["pid"]) / "stat").write_text(f"{v['pid']} (tini) " + " ".join(fields) + "\n")
    return cgroup, proc


async def settle(pilot, predicate: Callable[[], object], timeout: float = 30.0, message: str = "condition"):
    """Let the app run until `predicate()` is true (polled; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}; {_app_said(pilot.app)}")
        await pilot.pause(0.05)


def _app_said(app) -> str:
    """What the app showed when a wait timed out: its screen and its notices, and the workers still
    running with where in ptdesk each thread is (a CI log is all there is)."""
    try:
        notices = [f"{n.title}: {n.message}" for n in getattr(app, "_notifications", ())]
        rows = [f"{e.name} {e.kind} {e.status}" for e in getattr(getattr(app, "main", None), "experiments", ())]
        errors = [str(w.render()) for w in app.screen.query("#prompt-error")]
        workers = [w.name for w in app.workers if w.is_running]
    except Exception as exc:  # noqa: BLE001 - the timeout is the failure to report, not this
        return f"(the app's state unreadable: {exc!r})"
    return (f"screen {type(app.screen).__name__} {errors}, rows {rows}, notices {notices}, "
            f"workers running {workers}, threads in ptdesk {_threads_in_ptdesk()}")


def _threads_in_ptdesk() -> dict[str, str]:
    """Each other thread's innermost ptdesk frame (file:line function), for a wait that timed out."""
    names = {t.ident: t.name for t in threading.enumerate()}
    found = {}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        for entry in reversed(traceback.extract_stack(frame)):
            if f"{os.sep}ptdesk{os.sep}" in entry.filename:
                found[names.get(ident, str(ident))] = f"{Path(entry.filename).name}:{entry.lineno} {entry.name}"
                break
    return found
