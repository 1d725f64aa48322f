"""The main screen's batch-job actions: run a job from a small form (j), cancel the selected one (X).

A job is a row of the experiments table like any experiment while its container exists (kind
`job`: queued, running) and after it ended (its record: succeeded, failed, timed out, cancelled,
how and after how long); its log follows live and stays readable after the end (ptdesk.core.jobs
keeps it). Its end is a notice, as every announcement is (tui.notices).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from ptdesk.errors import InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.jobs.record import JobRecord
    from ptdesk.core.workstation import Workstation
    from ptdesk.tui.screens.prompt import Values

LOG_TAIL = 2000  # kept lines shown (the pane keeps at most its own MAX_LINES)


def kept_log(ws: Workstation, name: str) -> list[str]:
    try:
        from ptdesk.core.job_desk import JobDesk
        return list(JobDesk(ws).log_lines(name, tail=LOG_TAIL))
    except (PtdeskError, OSError):
        return []


def submit_from_form(ws: Workstation, values: Values, folder: str) -> list[JobRecord]:
    """The form's fields as `ptdesk run` takes them; queued when no GPU is free (it starts by itself)."""
    from ptdesk.core.job_desk import JobDesk
    from ptdesk.core.jobs.request import JobRequest

    try:
        command = tuple(shlex.split(values["command"]))
    except ValueError as exc:
        raise InvalidInput(f"The command does not parse ({exc}).", "Close the quotes.", field="command") from None
    typed = JobRequest(command=command, gpus=values["gpus"] or None, like=values["like"] or None,
                       time_limit=values["time_limit"] or None, code=values["code"] or folder, queue=True)
    try:
        return JobDesk(ws).submit(typed)
    except PtdeskError as exc:  # point the form at the field it is about
        exc.field = exc.field or _field_of(exc.message)
        raise


def _field_of(message: str) -> str:
    for words, field in (("duration", "time_limit"), ("--like", "like"), ("No experiment", "like"),
                         ("snapshot", "code"), ("command", "command"), ("GPU", "gpus")):
        if words in message:
            return field
    return "command"


class JobActions:
    """Mixed into the main screen's actions (tui.screens.experiment_actions)."""

    notify: Callable[..., None]

    def action_run_job(self) -> None:
        from ptdesk.tui.screens.prompt import Field, Prompt  # on `j`: not before the dashboard's first frame

        ws = self.ws  # type: ignore[attr-defined]
        folder = os.getcwd()
        experiments = tuple(r.name for r in ws.store.experiments() if r.kind != "job")
        fields = (Field("command", "Command", placeholder="python train.py --lr 3e-4"),
                  Field("gpus", "GPUs", ws.config.gpus, "none, auto, any:2, 0,2"),
                  Field("like", "Environment of experiment (empty: the SSH image)",
                        suggestions=experiments),
                  Field("time_limit", "Time limit", placeholder="e.g. 2h (empty: none)"),
                  Field("code", "Code folder (snapshot taken now, read-only at /code)", folder))

        def done(jobs: object) -> None:
            if isinstance(jobs, list) and jobs:
                names = ", ".join(f"{j.name} ({j.status})" for j in jobs)
                self.notify(f"Job {names}: output in {jobs[0].output}", markup=False)
                self.feeds[ws.name].request_list()  # type: ignore[attr-defined]

        self.app.push_screen(  # type: ignore[attr-defined]
            Prompt("Run a batch job", fields=fields, submit=lambda v: submit_from_form(ws, v, folder),
                   note="Detached: it runs on its own and its log stays after it ends. Waits for GPUs when none "
                        "is free.", empty="The command is empty: type what the job runs, e.g. python train.py."),
            done)

    def action_cancel_job(self) -> None:
        selected = self.table.selected  # type: ignore[attr-defined]
        if selected is None or selected.kind != "job":
            self.notify("Select a job to cancel (X cancels jobs; s stops experiments).", severity="warning")
            return
        ws, name = self.selected_ws, selected.name  # type: ignore[attr-defined]
        # Said at once: the grace between the signals can keep the row "running" for tens of seconds.
        self.notify(f"Cancelling {name} (SIGINT, then SIGTERM and SIGKILL a grace apart)…", markup=False)
        from ptdesk.core.job_desk import JobDesk, ending_line

        self._act(ws, f"Cancel {name}", lambda: JobDesk(ws).cancel(name),  # type: ignore[attr-defined]
                  lambda job: f"{name} {job.status}: {ending_line(job)}")  # type: ignore[attr-defined]
