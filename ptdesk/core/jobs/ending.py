"""How a job ends: the signals of a cancel, and what is kept when its container has stopped.

Cancel (and a time limit, which the container enforces itself: ptdesk.core.kinds.job) ends a job
gently first: SIGINT (a training loop saves and stops, as on Ctrl-C), a grace, SIGTERM, a grace,
SIGKILL. The container's init (docker's `init`) passes each on to the command and reaps what it
leaves; once the command is gone the kernel ends every process left in the container.

Whoever notices a stopped job first — the event watcher (`ptdesk watch`, the dashboard) on its
`die`, or any ptdesk command's reconcile pass, also long after the person's laptop was shut — keeps
its log (bounded) and exit state in the job's record, checks that nothing of it is left on its
GPUs, and removes the container; the reconcile then releases what it held.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_KIND, LABEL_NAME
from ptdesk.core.base.private_files import write_secret
from ptdesk.core.base.times import parse_time
from ptdesk.core.base.units import human_bytes
from ptdesk.core.jobs import JOB_KIND
from ptdesk.core.jobs import record as records
from ptdesk.core.jobs.record import JobRecord
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

LOG_LINES = 20_000  # the kept log: its last lines, at most LOG_BYTES
LOG_BYTES = 4 * 1024**2
SIGNALS = ("SIGINT", "SIGTERM", "SIGKILL")
JOB = JOB_KIND


def end_gently(site: Site, container_id: str, grace: float, said: Callable[[str], None] = lambda s: None) -> str:
    """SIGINT, grace, SIGTERM, grace, SIGKILL, each only while the job still runs; the last signal sent."""
    sent = ""
    for signal in SIGNALS:
        if not site.engine.is_running(container_id):
            break
        said(f"sending {signal}")
        site.engine.kill(container_id, signal)
        sent = signal
        deadline = time.monotonic() + grace
        while site.engine.is_running(container_id) and time.monotonic() < deadline:
            time.sleep(0.1)
    return sent


def collect(site: Site, containers: Iterable[dict]) -> list[str]:
    """Finish every job of this home whose container has stopped; the names finished."""
    done = []
    for container in containers:
        labels = container.get("Labels") or {}
        if labels.get(LABEL_KIND) != JOB or container.get("State") not in ("exited", "dead"):
            continue
        record = site.store.experiment(labels.get(LABEL_NAME) or "")
        if record is None or record.container_id != container["Id"]:
            continue  # another home's job, or not (yet) this record's container
        with contextlib.suppress(PtdeskError):  # the next pass tries again
            finish(site, record)
            done.append(record.name)
    return done


def finish(site: Site, experiment: ExperimentRecord, pids: Iterable[int] = ()) -> JobRecord | None:
    """Keep the stopped job's log and end state, check its GPUs, remove its container. `pids`:
    the job's host pids when known (a cancel reads them first)."""
    config, engine = site.config, site.engine
    container_id = experiment.container_id
    state = (engine.try_inspect(container_id) or {}).get("State") if container_id else None
    if not container_id or not state or state.get("Running") or state.get("Status") == "created":
        return None
    job = records.load(config, experiment.name)
    if job is not None and not job.ended:
        write_secret(records.folder(config, job.name) / records.LOG, _log_tail(site, container_id))
        from ptdesk.core.jobs import environment as kept_environment  # imported by who finishes, not who submits
        with contextlib.suppress(PtdeskError):  # env diff JOB after its end; nothing recorded: it says so
            kept_environment.keep_from_image(config, engine, job.name, container_id)
        started = parse_time(state.get("StartedAt")) or job.started
        finished = parse_time(state.get("FinishedAt")) or time.time()
        code = int(state.get("ExitCode") or 0)
        job = records.update(config, job.name, status=_status(job, code, started, finished), exit_code=code,
                             started=started, finished=finished, gpus=experiment.gpus)
    engine.remove(container_id, force=True)
    if job is not None and experiment.gpus:
        job = records.update(config, job.name, leftover=leftover(site, container_id, experiment.gpus, pids)) or job
    if job is not None:
        tell(site, job)
    return job


def tell(site: Site, job: JobRecord) -> None:
    """Announce its end (once per box, whoever noticed it: ptdesk.core.notify)."""
    try:
        lines = (records.folder(site.config, job.name) / records.LOG).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    from ptdesk.core.notify import hooks  # the notices' routes: imported only once a job ended
    with contextlib.suppress(PtdeskError, OSError):  # a route that fails is the notify log's to say
        hooks.job_finished(site, job.name, job.status, job.exit_code, job.duration, job.gpu_hours, tuple(lines[-5:]))


def _status(job: JobRecord, code: int, started: float | None, finished: float) -> str:
    if job.cancel_requested:
        return "cancelled"
    if job.time_limit and started is not None and finished - started >= job.time_limit - 0.5:
        return "timed out"
    return "succeeded" if code == 0 else "failed"


def _log_tail(site: Site, container_id: str) -> bytes:
    frames = site.engine.logs(container_id, tail=LOG_LINES)
    try:
        data = b"".join(frames)
    finally:
        frames.close()
    return data[-LOG_BYTES:]


def leftover(site: Site, container_id: str, gpus: Iterable[int], pids: Iterable[int] = ()) -> tuple[str, ...]:
    """Processes of the ended job that NVML still lists on its GPUs (a process stuck in the driver
    outlives its container; a dead one's memory may not be given back): one line each, with its
    pid and memory. Known by the container they are in, or by the job's pids. Empty when none."""
    try:
        snapshot = site.gpu_snapshot()
    except PtdeskError:
        return ()
    wanted, known = set(gpus), set(pids)
    return tuple(f"pid {p.pid} on GPU {g.index} ({human_bytes(p.used_memory)})" for g in snapshot.gpus
                 if g.index in wanted for p in g.processes
                 if p.pid in known or (p.container and container_id.startswith(p.container[:12])))
