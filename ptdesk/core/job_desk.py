"""The front ends' door to batch jobs on one workstation: submit (`ptdesk run`, sweeps), list, follow,
cancel, rerun, prune.

A job is launched by the one launch path every experiment takes (spec, hardening, GPU admission,
the queue: ptdesk.core.experiments.launch) as the `job` kind, with its code snapshot placed before
start. Its record (ptdesk.core.jobs.record) is written before the launch and outlives the container.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptdesk.core.base.times import parse_time
from ptdesk.core.jobs import ending, request
from ptdesk.core.jobs import record as records
from ptdesk.core.jobs.record import JobRecord
from ptdesk.core.jobs.request import JobRequest
from ptdesk.errors import Conflict, InvalidInput, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.base.models import Experiment, LaunchSpec
    from ptdesk.core.workstation import Workstation

Said = Callable[[str], None]


@dataclass(frozen=True)
class JobView:
    """A job as listed: its record, with the live status while its container exists."""

    record: JobRecord
    status: str  # queued #N, running, succeeded, failed, timed out, cancelled
    waiting: str | None = None  # in the queue: why

    def to_json(self) -> dict:
        return {**self.record.to_json(), "status": self.status, "waiting": self.waiting}


@dataclass(frozen=True)
class Slot:
    """One job of a sweep spread over workstations (`--on auto`): which combination, its name (chosen
    free on every workstation), and the sweep it is listed under."""

    index: int
    name: str
    group: str
    code: tuple[Path, Any] | None = None  # the sweep's one code snapshot (file, what it holds): frozen once


class JobDesk:
    def __init__(self, ws: Workstation) -> None:
        self.ws = ws

    # --- submitting ---------------------------------------------------------------------------
    def submit(self, typed: JobRequest, said: Said = lambda s: None, kept: JobRecord | None = None,
               slot: Slot | None = None) -> list[JobRecord]:
        """One job per sweep combination (one without a sweep); nothing is made on a mistake.
        `kept`: a job whose snapshot this one runs again (rerun) instead of the working folder's;
        `slot`: only that one job of the sweep, here."""
        from ptdesk.core.jobs import snapshot
        command = request.check_command(typed.command)
        limit = request.time_limit(typed.time_limit)
        snapshot_limit = request.snapshot_limit(typed.snapshot_limit)
        if typed.grace < 0:
            raise InvalidInput(f"The grace must not be negative (got {typed.grace:g}).", "Use e.g. --grace 10.")
        combos = request.sweep_combinations(command, typed.sweep)
        mounts = self._data_mounts(typed.data)
        if slot is not None:
            combos, names = [combos[slot.index]], [slot.name]
        else:
            names = self.names(typed.name, len(combos))
        image, fingerprint, layer_from, lived = self._environment(typed)
        # Every option checked before anything is made.
        specs = [replace(self._spec(typed, name, image), layer_from=layer_from) for name in names]
        tmp = self.ws.config.home / "jobs" / f".snapshot-{os.getpid()}.tar"
        records.make_folder(self.ws.config, "")  # the 0700 jobs folder
        try:
            if slot is not None and slot.code is not None:
                shutil.copyfile(slot.code[0], tmp)
                taken: snapshot.Snapshot | dict = slot.code[1]
            elif kept is not None:
                shutil.copyfile(records.folder(self.ws.config, kept.name) / records.SNAPSHOT, tmp)
                taken = kept.snapshot
            else:
                source = Path(typed.code or os.getcwd())
                taken = snapshot.take(source, tmp, snapshot_limit)
            group = slot.group if slot else typed.name or names[0]  # a sweep's jobs are listed together under it
            return [self._launch(typed, spec, values, cmd, limit, mounts, tmp, taken, (fingerprint, lived), group,
                                 said) for spec, (values, cmd) in zip(specs, combos, strict=True)]
        finally:
            tmp.unlink(missing_ok=True)

    def _launch(self, typed: JobRequest, spec: LaunchSpec, values: dict, command: tuple[str, ...],
                limit: int | None, mounts: list, tmp: Path, taken: Any, environment: tuple[str | None, Any],
                group: str, said: Said) -> JobRecord:
        config, name = self.ws.config, spec.name
        fingerprint, lived = environment
        folder = records.make_folder(config, name)
        code = folder / records.SNAPSHOT
        if not code.exists():
            os.link(tmp, code)  # one snapshot's bytes for every job of a sweep
        environment = (("PTDESK_TIME_LIMIT", str(limit)), ("PTDESK_GRACE", str(max(1, round(typed.grace)))),
                       ) if limit else ()
        spec = replace(spec, command=command, snapshot=code, mounts=tuple(mounts), environment=environment)
        job = JobRecord(name=name, owner=spec.owner, command=command, submitted=time.time(),
                        workstation=self.ws.name, image=spec.image, gpus_request=spec.gpus, options=typed.to_json(),
                        time_limit=limit, grace=typed.grace, workspace=str(spec.workspace),
                        output=str(Path(spec.workspace) / "outputs" / name),
                        snapshot=taken if isinstance(taken, dict) else taken.to_json(),
                        sweep=group if typed.sweep else None, sweep_values=values, like=typed.like,
                        env_fingerprint=fingerprint)
        records.save(config, job)
        if lived is not None:  # --like: the experiment's environment as read now, kept for env diff
            from ptdesk.core.jobs import environment as kept_environment
            kept_environment.save(config, name, lived)
        try:
            launched = self.ws.launch(spec, said)
        except BaseException:
            records.discard(config, name)
            raise
        experiment = launched.experiment
        record = self.ws.store.experiment(name)
        return records.update(config, name, status=experiment.status, gpus=experiment.gpus,
                              workspace=str(experiment.workspace or spec.workspace),
                              env_fingerprint=fingerprint or (record.env_fingerprint if record else None)) or job

    def _spec(self, typed: JobRequest, name: str, image: str | None) -> LaunchSpec:
        return self.ws.make_spec("job", name=name, gpus=typed.gpus, gpu_memory=typed.gpu_memory, memory=typed.memory,
                                 cpus=typed.cpus, workspace=typed.workspace, queue=typed.queue, image=image)

    @contextlib.contextmanager
    def frozen_code(self, typed: JobRequest) -> Iterator[tuple[Path, Any]]:
        """The working folder's snapshot taken once for a sweep placed job by job (each job copies it
        to its own workstation); removed afterwards."""
        from ptdesk.core.jobs import snapshot
        limit = request.snapshot_limit(typed.snapshot_limit)
        records.make_folder(self.ws.config, "")
        path = self.ws.config.home / "jobs" / f".sweep-{os.getpid()}.tar"
        try:
            yield path, snapshot.take(Path(typed.code or os.getcwd()), path, limit)
        finally:
            path.unlink(missing_ok=True)

    def taken_names(self) -> set[str]:
        """Names in use here: in the store, on the engine and among the kept job records."""
        taken = {r.name for r in self.ws.store.experiments()} | {r.name for r in records.all_records(self.ws.config)}
        managed = self.ws.engine.list_managed(self.ws.config.instance)
        return taken | {c.get("Labels", {}).get("ptdesk.name") for c in managed}

    def names(self, typed: str | None, count: int, taken: set[str] | None = None) -> list[str]:
        """The given name (NAME-1..N for a sweep), else OWNER-job-N: free here (and not in `taken`,
        the names in use on the other workstations when a sweep spreads)."""
        from ptdesk.core.base.names import validate_name
        taken = self.taken_names() | (taken or set())
        if typed is not None:
            names = [validate_name(typed if count == 1 else f"{typed}-{i}") for i in range(1, count + 1)]
            if clash := [n for n in names if n in taken]:
                raise Conflict(f"A job or experiment named {clash[0]!r} exists already.",
                               "Pick another --name (ptdesk jobs --prune forgets ended jobs).", field="name")
            return names
        owner, names, n = self.ws.default_owner(), [], 1
        while len(names) < count:
            if (candidate := f"{owner}-job-{n}") not in taken:
                names.append(candidate)
            n += 1
        return names

    def _data_mounts(self, data: tuple[str, ...]) -> list[tuple[str, str, str]]:
        from ptdesk.core.experiments.spec import check_workspace
        from ptdesk.core.host.workspace import docker_root
        out = []
        for path, mode in request.data_mounts(data):
            typed = Path(path).expanduser()
            if not typed.exists():  # the workspace rule's own sentence would call it a workspace
                raise NotFound(f"The --data folder {typed} does not exist.", "Check the path: --data PATH[:ro|rw].")
            try:
                folder = check_workspace(self.ws.config, typed, docker_root(self.ws.engine))
            except InvalidInput as exc:
                raise InvalidInput(exc.message.replace("cannot be a workspace", "cannot be mounted with --data"),
                                   exc.hint) from None
            out.append((str(folder), f"{request.DATA_MOUNT}/{folder.name}", mode))
        return out

    def _environment(self, typed: JobRequest) -> tuple[str | None, str | None, str | None, Any]:
        """(image, fingerprint, container whose layer it copies, its live Environment) for --like
        (ptdesk.core.jobs.like); the kind's default image otherwise (its fingerprint recorded at launch)."""
        if typed.like is None:
            return typed.image, None, None, None
        if typed.image:
            raise InvalidInput("--like and --image both name the environment.", "Use one of them.")
        from ptdesk.core.jobs import like
        found = like.resolve(self.ws, typed.like)
        return found.image, found.fingerprint, found.container_id, found.environment

    # --- listing ------------------------------------------------------------------------------
    def jobs(self) -> list[JobView]:
        """This workstation's jobs (their records are in its part of the person's home)."""
        from ptdesk.core.jobs import peaks
        with contextlib.suppress(PtdeskError):  # no GPU to read: the peaks noted so far stand
            peaks.note(self.ws)
        live = {e.name: e for e in self.ws.list_experiments(all=True) if e.kind == ending.JOB}
        views = []
        for job in self._records():
            experiment = live.get(job.name)
            status = job.status if job.ended or experiment is None else experiment.status
            if status == "running" and job.started is None:
                job = self._note_start(job)
            views.append(JobView(job, status, experiment.waiting if experiment else None))
        return views

    def _note_start(self, job: JobRecord) -> JobRecord:
        """A running job's start, read once from its container (its record had it only at the end, so
        `ptdesk jobs` listed a running job as never started)."""
        record = self.ws.store.experiment(job.name)
        state = (self.ws.engine.try_inspect(record.container_id) or {}).get("State") \
            if record and record.container_id else None
        started = parse_time(state.get("StartedAt")) if state and state.get("Running") else None
        return (records.update(self.ws.config, job.name, started=started) or job) if started else job

    def unreachable(self) -> list[JobView]:
        """This workstation's jobs as their records last said, when its engine does not answer: an
        ended one as it ended, the others `unreachable` (they may well still run)."""
        return [JobView(job, job.status if job.ended else "unreachable") for job in self._records()]

    def _records(self) -> list[JobRecord]:
        return records.all_records(self.ws.config)

    def ended_rows(self, listed: Collection[str] = ()) -> list[Experiment]:
        """Ended jobs as rows beside the experiments (their containers are gone): the dashboard's.
        `listed`: the names the experiments' list (read first) has; a job ended a moment ago may
        still be among them, as the experiment it was: one row each."""
        from ptdesk.core.base.models import Access, Experiment
        rows = []
        for job in self._records():
            if not job.ended or job.name in listed:
                continue
            said = ending_line(job)
            details = (("Command", " ".join(job.command)), ("Ended", said), ("GPU-hours", f"{job.gpu_hours:.2f}"),
                       ("Output", job.output or "-"), ("Log", f"ptdesk logs {job.name}"))
            rows.append(Experiment(name=job.name, id="", kind=ending.JOB, owner=job.owner, image=job.image,
                                   status=job.status, gpus=job.gpus, created=job.submitted, workspace=job.workspace,
                                   access=Access(connect=said, rows=details, fields={"status": job.status})))
        return rows

    def job(self, name: str) -> JobRecord:
        job = records.load(self.ws.config, name)
        if job is None:
            other = self.ws.store.experiment(name)
            if other is not None and other.kind != ending.JOB:  # cancel/rerun NOTEBOOK: say what it is
                raise NotFound(f"{name!r} is not a job but an experiment ({other.kind}).",
                               f"Stop it with: ptdesk stop {name} (ptdesk jobs lists your jobs).")
            raise NotFound(f"No job named {name!r}.", "See your jobs with: ptdesk jobs")
        return job

    def environment_diff(self, a: str, b: str) -> Any:
        """`env diff A B` where A or B may be a job whose container is gone: the environment it ran in,
        kept with its record (ptdesk.core.jobs.environment); a running one is read live as any."""
        from ptdesk.core.jobs import environment as kept_environment
        known = {}
        for name in (a, b):
            if self.ws.store.experiment(name) is not None or not self.is_job(name):
                continue
            env = kept_environment.load(self.ws.config, name)
            if env is None:
                raise NotFound(f"Job {name!r} kept no record of its environment (its image recorded none, or it "
                               "never started).", "Compare images built by `ptdesk images build` (image:KIND).")
            job = self.job(name)
            known[name] = (f"{name} (job, {job.status})", env, job.env_fingerprint or env.fingerprint())
        return self.ws.environment_diff(a, b, known)

    def is_job(self, name: str) -> bool:
        return records.load(self.ws.config, name) is not None

    def prune(self) -> list[str]:
        """Forget every ended job (record, log, snapshot, the marker that its end was said); running
        and queued ones stay."""
        from ptdesk.core.notify.hooks import job_key  # only a prune needs the notices' markers
        from ptdesk.core.notify.once import forget_marker
        pruned = []
        for job in records.all_records(self.ws.config):
            if job.ended:
                records.discard(self.ws.config, job.name)
                with contextlib.suppress(PtdeskError):  # the engine is down: it expires by itself
                    forget_marker(self.ws, job_key(self.ws, job.name))
                pruned.append(job.name)
        return pruned

    # --- following, ending --------------------------------------------------------------------
    def log_lines(self, name: str, tail: int | str = 100, follow: bool = False) -> Iterator[str]:
        """The live log while the container exists; the kept one after."""
        record = self.ws.store.experiment(name)
        if record is not None and record.container_id and self.ws.engine.try_inspect(record.container_id):
            yield from self.ws.logs(name, tail=tail, follow=follow)
            return
        self.job(name)
        try:
            lines = (records.folder(self.ws.config, name) / records.LOG).read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return  # it has not run (queued, cancelled before it started)
        kept = lines.splitlines()
        yield from kept if tail == "all" else kept[-int(tail):] if int(tail) else []

    def running(self, name: str) -> bool:
        record = self.ws.store.experiment(name)
        return record is not None and record.status == "running"

    def settle(self, name: str, pids: list[int] | None = None) -> JobRecord:
        """The job's record once its stopped container was finished (kept, removed, released)."""
        record = self.ws.store.experiment(name)
        if record is not None:
            ending.finish(self.ws, record, pids or ())
        with contextlib.suppress(PtdeskError):
            self.ws.reconcile()
        return self.job(name)

    def cancel(self, name: str, said: Said = lambda s: None) -> JobRecord:
        """Take a queued job out of the queue; end a running one gently (SIGINT, SIGTERM, SIGKILL)."""
        job = self.job(name)
        if job.ended:
            raise Conflict(f"Job {name!r} has ended already ({job.status}).", "See it with: ptdesk jobs")
        records.update(self.ws.config, name, cancel_requested=True)
        record = self.ws.store.experiment(name)
        if record is None or not record.container_id or not self.ws.engine.is_running(record.container_id):
            if record is not None:
                self.ws.remove(name, force=True)  # queued: never started
            job = records.update(self.ws.config, name, status="cancelled", finished=time.time()) or job
            ending.tell(self.ws, job)
            return job
        pids = [] if self.ws.is_remote else self.ws.engine.top_pids(record.container_id)
        ending.end_gently(self.ws, record.container_id, job.grace, said)
        job = self.settle(name, pids)
        from ptdesk.core.host.processes import pid_alive
        if alive := [f"pid {pid} still alive" for pid in pids if pid_alive(pid)]:
            job = records.update(self.ws.config, name, leftover=job.leftover + tuple(alive)) or job
        return job

    def rerun(self, name: str, said: Said = lambda s: None) -> list[JobRecord]:
        """The same command, snapshot and options, as a new job."""
        job = self.job(name)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in job.options.items()}
        typed = replace(JobRequest(**options), name=None, sweep=(), command=job.command)
        return self.submit(typed, said, kept=job)


def ending_line(job: JobRecord) -> str:
    """"exit 3 after 1m20s", "cancelled", and what is left on its GPUs: how a job ended, in one line."""
    said = "" if job.exit_code is None else f"exit {job.exit_code}"
    if job.duration is not None:
        said = f"{said} after {duration_text(job.duration)}".strip()
    if job.leftover:
        said += f"; still on its GPUs: {', '.join(job.leftover)}"
    return said or job.status


def duration_text(seconds: float | None) -> str:
    """1h05m, 3m20s, 12s; "-" when not known."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"
