"""The main screen's actions on the selected experiment: details, copy, shell, stop/start, remove,
collaborators. Each goes to the selected experiment's own workstation (the rows of every
workstation share one table), in a background job (tui.jobs), and reads that workstation's list
again when done. A base class of MainScreen, which owns the table, the log pane and the feeds.
The screens a key opens are imported when it is pressed: not before the dashboard's first frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.screen import Screen

from ptdesk.core.base.models import Experiment
from ptdesk.core.kinds import REGISTRY
from ptdesk.core.workstation import Workstation
from ptdesk.errors import GpusGone
from ptdesk.tui.errors import notify_error
from ptdesk.tui.format import removal_note
from ptdesk.tui.jobs import run_job
from ptdesk.tui.screens.job_actions import JobActions, kept_log
from ptdesk.tui.shell import open_shell, shell_refusal
from ptdesk.tui.widgets.experiments_table import ExperimentsTable
from ptdesk.tui.widgets.log_pane import LogPane

if TYPE_CHECKING:
    from ptdesk.tui.boxes import Boxes
    from ptdesk.tui.live import LiveFeeds


class ExperimentActions(JobActions, Screen[None]):
    """What MainScreen gives these actions."""

    ws: Workstation  # the default workstation
    workstations: dict[str, Workstation]
    feeds: dict[str, LiveFeeds]
    boxes: Boxes

    @property
    def table(self) -> ExperimentsTable:
        return self.query_one(ExperimentsTable)

    @property
    def log_pane(self) -> LogPane:
        return self.query_one(LogPane)

    def _follow_selected(self) -> None:
        """Show the selected experiment's log (asked of its own workstation's engine)."""
        selected, ws = self.table.selected, self.selected_ws
        up = bool(self.boxes[ws.name].engine_up)
        if selected is None:
            self.log_pane.follow(ws, None, "", False, up)
            return
        if selected.status.startswith("queued"):  # never started: no log yet (a stream would say it "ended")
            self.log_pane.show_kept(ws, selected.name, [], state="queued: its log starts when it does")
            return
        if selected.kind == "job" and not selected.id:  # an ended job: its kept log
            self.log_pane.show_kept(ws, selected.name, kept_log(ws, selected.name))
            return
        self.log_pane.follow(ws, selected.id or None, selected.name, selected.status == "running", up)

    def _need_selected(self) -> Experiment | None:
        selected = self.table.selected
        if selected is None:
            self.notify("Select an experiment first (or press n for a new one).", severity="warning")
        return selected

    @property
    def selected_ws(self) -> Workstation:
        """The workstation of the selected experiment (the default one when none is selected)."""
        return self.workstations.get(self.table.selected_where or "", self.ws)

    def _act(self, ws: Workstation, title: str, job: Callable[[], object], done: str | Callable[[object], str],
             on_error: Callable[[BaseException], bool] | None = None) -> None:
        """Run `job` (an action on `ws`) in the background; say `done` (or what it makes of the
        job's result) or the error (unless `on_error` took care of it), then read that
        workstation's list again."""
        feeds = self.feeds[ws.name]

        def finished(result: object) -> None:
            self.notify(done if isinstance(done, str) else done(result), markup=False)
            feeds.request_list()

        def failed(error: BaseException) -> None:
            if on_error is None or not on_error(error):
                notify_error(self.app, error, title=title)
            feeds.request_list()

        run_job(self, job, title=title, on_done=finished, on_error=failed, group="action")

    def action_details(self) -> None:
        if (selected := self._need_selected()) is not None:
            stats = self.table.stats.get(selected.id)
            from ptdesk.core.vscode.cache import seen_in as vscode_seen_in
            from ptdesk.tui.screens.details import Details

            ws, kind = self.selected_ws, REGISTRY.get(selected.kind)
            ours = kind is not None and kind.mounts_vscode_cache and not (selected.foreign or selected.unverified)
            builds = (lambda: vscode_seen_in(ws, selected.id)) if ours and selected.id else None
            self.app.push_screen(Details(selected, oom_kills=stats.oom_kills if stats else None, vscode_builds=builds))

    def action_copy(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if selected.status != "running":
            from ptdesk.tui.screens.details import stopped_copy_note

            self.notify(stopped_copy_note(selected), severity="warning", markup=False)
            return
        if not selected.connect:
            self.notify(f"{selected.name} has no connect line.", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(selected.connect)
        self.notify(f"Copied: {selected.connect}", markup=False)

    def action_shell(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if (refusal := shell_refusal(selected)) is not None:
            self.notify(refusal, severity="warning", markup=False)
            return
        name = selected.name
        # The command line is read in the background (it asks the engine); the shell runs here.
        ws = self.selected_ws
        run_job(self, lambda: ws.shell_argv(name), title=f"Shell in {name}",
                on_done=lambda argv: self._shell(name, argv), group="shell")

    def _shell(self, name: str, argv: list[str]) -> None:
        # Nothing draws the log while the shell has the terminal: its batches would only pile up.
        self.log_pane.stop()
        open_shell(self.app, name, argv)
        self._follow_selected()

    def action_stop_start(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        name, ws = selected.name, self.selected_ws
        if selected.status == "running":
            self.notify(f"Stopping {name}…", markup=False)
            self._act(ws, f"Stopping {name}", lambda: ws.stop(name), f"{name} stopped.")
        else:
            self.notify(f"Starting {name} (waiting until it accepts logins)…", markup=False)
            self._act(ws, f"Starting {name}", lambda: ws.start(name), f"{name} is running.",
                      on_error=lambda error: self._ask_gpus(ws, name, len(selected.gpus), error))

    def _ask_gpus(self, ws: Workstation, name: str, count: int, error: BaseException) -> bool:
        """Its GPUs were let go and taken: ask what to do (the CLI's --gpus auto / none / --queue)."""
        if not isinstance(error, GpusGone):
            return False

        def chosen(choice: str | None) -> None:
            if choice is None:
                return
            # "Other GPUs": as many as it had (any:N), the least loaded free ones.
            other = f"any:{count}" if count > 1 else "auto"
            gpus, queue = (None, True) if choice == "queue" else (other if choice == "auto" else choice, False)
            where = {"auto": "on other GPUs", "none": "without a GPU", "queue": "when GPUs free"}[choice]
            self.notify(f"Starting {name} {where}…", markup=False)
            # With the queue it starts at once if GPUs can be had (its own, or as many others).
            self._act(ws, f"Starting {name}", lambda: ws.start(name, gpus=gpus, queue=queue),
                      lambda started: f"{name} waits for GPUs ({started.status})."
                      if started.status.startswith("queued") else f"{name} is running{'' if queue else ' ' + where}.")

        from ptdesk.tui.screens.gpus_gone import GpusGone as GpusGoneDialog

        self.app.push_screen(GpusGoneDialog(name, error.message), chosen)
        return True

    def action_remove(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        name, ws = selected.name, self.selected_ws

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._act(ws, f"Removing {name}", lambda: ws.remove(name, force=True), f"{name} removed.")

        from ptdesk.tui.screens.confirm import Confirm

        self.app.push_screen(Confirm(f"Remove {name}?", removal_note(selected)), confirmed)

    def action_keep(self) -> None:
        if (selected := self._need_selected()) is not None:
            from ptdesk.tui.screens.idle_cull import keep
            keep(self, self.selected_ws, selected.name)

    def action_idle_cull(self) -> None:
        from ptdesk.tui.screens.idle_cull import IdleCull
        self.app.push_screen(IdleCull(self.selected_ws))

    def action_reservations(self) -> None:
        from ptdesk.tui.screens.reservations import Reservations
        self.app.push_screen(Reservations(self.selected_ws))

    def action_usage(self) -> None:
        from ptdesk.tui.screens.usage import Usage
        self.app.push_screen(Usage(self.selected_ws))

    def action_collaborators(self) -> None:
        from ptdesk.tui.screens.collaborators import Collaborators

        selected = self.table.selected
        self.app.push_screen(Collaborators(self.selected_ws,
                                           selected.name if selected and selected.kind == "ssh" else None))
