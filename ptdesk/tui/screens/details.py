"""Everything about one experiment: how to connect, its host key, limits and GPUs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ptdesk.core.base.models import Experiment
from ptdesk.core.notify.herald import oom_notice
from ptdesk.core.vscode.cache import Cached
from ptdesk.tui.format import status_word
from ptdesk.tui.jobs import JobDone, run_job


def details_table(e: Experiment, oom_kills: int | None = None, vscode: tuple[Cached, ...] | None = None) -> Table:
    """How to reach it first (on a small terminal that is what must be on screen), then the rest."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    # Long values wrap at spaces (an ssh line stays whole, one option after another); only a
    # single word wider than the dialog (a long path) is folded.
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [("Status", status_word(e.status))]
    if e.logged_in is not None and e.status == "running":  # as the CLI's LOGGED IN column, when it was listed
        rows.append(("Logged in", ", ".join(e.logged_in) or "nobody"))
    if e.access:
        rows += list(e.access.rows)  # the kind's own: connect line, host, host key, URL...
        if e.status != "running":
            rows.append(("Note", "Stopped: the connect line works again once it runs (s starts it)."))
    if vscode is not None:  # it has the workstation's VS Code Server cache (ptdesk vscode)
        rows.append(("VS Code Server", ", ".join(f"{c.version} ({c.commit[:12]})" for c in vscode)
                     + " cached: those clients start offline" if vscode else "none cached (ptdesk vscode add)"))
    rows += [
        ("Kind", e.kind), ("Owner", e.owner), ("Container", e.id[:12] or "-"), ("Image", e.image),
        ("GPUs", ", ".join(map(str, e.gpus)) or "none"),
        ("Created", datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M:%S") if e.created else "-"),
        ("Workspace", f"{e.workspace} -> /workspace" if e.workspace else "-"),
    ]
    if e.limits:
        rows.append(("Limits", f"memory {e.limits.memory}, {e.limits.cpus:g} CPUs, {e.limits.pids} pids, "
                               f"shm {e.limits.shm_size}"))
    if oom_kills and e.limits:
        rows.append(("Out of memory", oom_notice(e.name, oom_kills, e.limits.memory).body))
    if e.environment and e.environment.driver_warning:
        rows.append(("Driver", e.environment.driver_warning))
    if e.unverified and not e.foreign:
        rows.append(("Note", "Someone's, but nothing proves this ptdesk home made it (unverified): listed "
                             "read-only, nothing handed out."))
    elif e.orphan:
        rows.append(("Note", "ptdesk's record has no container any more (orphan)."))
    for key, value in rows:
        table.add_row(key, Text(value))  # Text: values from outside are never markup
    return table


class Details(ModalScreen[None]):
    BINDINGS = [("escape,q,i", "dismiss", "Close"), ("c", "copy", "Copy connect")]

    def __init__(self, experiment: Experiment, oom_kills: int | None = None,
                 vscode_builds: Callable[[], tuple[Cached, ...] | None] | None = None) -> None:
        super().__init__(classes="modal")
        self.experiment = experiment
        self.oom_kills = oom_kills  # processes the memory limit killed in it (from the stats feed)
        # What the VS Code Server cache it mounts holds (read inside it, in the background; None: no cache).
        self.vscode_builds = vscode_builds

    def on_mount(self) -> None:
        if self.vscode_builds is not None and self.experiment.status == "running":
            run_job(self, self.vscode_builds, title="Reading the VS Code Server cache", on_done=self._vscode_read,
                    on_error=lambda _: None)  # a detail that could not be read is simply not shown

    def _vscode_read(self, builds: tuple[Cached, ...] | None) -> None:
        if builds is not None:
            self.query_one("#details", Static).update(details_table(self.experiment, self.oom_kills, builds))

    @on(JobDone)
    def _job_done(self, message: JobDone) -> None:
        message.settle(self.app)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Static(Text(f"{self.experiment.name}", style="bold"), classes="dialog-title")
            yield Static(details_table(self.experiment, self.oom_kills), id="details")
            yield Static(Text("c copies the connect line · escape closes", style="dim"))

    def action_copy(self) -> None:
        if self.experiment.status != "running":
            self.notify(stopped_copy_note(self.experiment), severity="warning", markup=False)
        elif self.experiment.connect:
            self.app.copy_to_clipboard(self.experiment.connect)
            self.notify("Copied the connect line to the clipboard.")


def stopped_copy_note(e: Experiment) -> str:
    """Why `c` copies nothing for an experiment that is not running."""
    return (f"{e.name} is {status_word(e.status)}: its connect line leads nowhere until it runs again "
            "(s starts it).")
