"""What the dashboard does to the selected experiment (new, details, copy, stop/start, remove), and
which of its commands apply where: the keys and the command palette follow one rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual import on, work
from textual.app import SystemCommand
from textual.screen import Screen

from ptdesk.core.models import Experiment
from ptdesk.tui.errors import notify_error
from ptdesk.tui.live import LiveFeeds, while_running
from ptdesk.tui.messages import ActionDone

# Actions that act on the main screen's selection or layout (everything but help and quit).
MAIN_SCREEN_ACTIONS = frozenset({"new", "details", "copy", "stop_start", "remove", "logs", "pause_log",
                                 "find_in_log", "filter", "collaborators"})
# The command palette's entries: (title, help, action).
PALETTE = (
    ("New experiment", "Start a Jupyter or SSH container", "new"),
    ("Experiment details", "Connect line, host key, limits, GPUs", "details"),
    ("Copy connect line", "ssh command or Jupyter URL of the selection", "copy"),
    ("Stop or start", "Stop the selected experiment, or start it", "stop_start"),
    ("Remove experiment", "Remove the selection (asks first)", "remove"),
    ("Logs full-screen", "Follow the selected experiment's log", "logs"),
    ("Collaborators", "Grant, revoke, rotate keys", "collaborators"),
    ("Filter experiments", "Show only matching rows", "filter"),
    ("Keys", "What every key does", "help"),
)


class ExperimentActions(LiveFeeds):
    """The layer of PtdeskApp that acts on experiments: on the live list's selection, through the
    core in a worker, refreshing the list when done. Some palette entries (logs, filter) are
    PtdeskApp's own actions."""

    # --- where actions apply -----------------------------------------------------------------------
    def allowed_on(self, action: str, screen: Screen) -> bool:
        """The main screen's actions act on its selected experiment: on any other screen (the
        collaborators list, a dialog) they are off, so `d` there never removes an experiment."""
        return action not in MAIN_SCREEN_ACTIONS or screen is self.screen_stack[0]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.allowed_on(action, self.screen)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette calls actions directly, past check_action: offer only what applies to the
        screen it was opened from."""
        yield from super().get_system_commands(screen)
        for title, help_text, action in PALETTE:
            if self.allowed_on(action, screen):
                yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))

    # --- the actions -------------------------------------------------------------------------------
    def _need_selected(self) -> Experiment | None:
        selected = self.table.selected
        if selected is None:
            self.notify("Select an experiment first (or press n for a new one).", severity="warning")
        return selected

    def action_new(self) -> None:
        from ptdesk.tui.screens.new_experiment import NewExperiment

        def closed(experiment: Experiment | None) -> None:
            self.request_list()

        self.push_screen(NewExperiment(self.ws), closed)

    def action_details(self) -> None:
        from ptdesk.tui.screens.details import Details

        if (selected := self._need_selected()) is not None:
            self.push_screen(Details(selected))

    def action_copy(self) -> None:
        selected = self._need_selected()
        if selected is None:
            return
        if not selected.connect:
            self.notify(f"{selected.name} has no connect line (is it running?).", severity="warning", markup=False)
            return
        self.copy_to_clipboard(selected.connect)
        self.notify(f"Copied: {selected.connect}", markup=False)

    def action_stop_start(self) -> None:
        from ptdesk.core import experiments

        selected = self._need_selected()
        if selected is None:
            return
        if selected.status == "running":
            self.notify(f"Stopping {selected.name}…", markup=False)
            self._act(lambda: experiments.stop(self.ws, selected.name), f"{selected.name} stopped.")
        else:
            self.notify(f"Starting {selected.name} (waiting until it accepts logins)…", markup=False)
            self._act(lambda: experiments.start(self.ws, selected.name), f"{selected.name} is running.")

    def action_remove(self) -> None:
        from ptdesk.core import experiments
        from ptdesk.tui.screens.confirm import Confirm

        selected = self._need_selected()
        if selected is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._act(lambda: experiments.remove(self.ws, selected.name, force=True),
                          f"{selected.name} removed.")

        if selected.foreign:  # a team lead cleaning up: say plainly whose it is
            body = (f"It belongs to {selected.owner}'s ptdesk, not yours: the container goes away, and "
                    f"{selected.owner}'s ptdesk releases what it held the next time it runs.")
        else:
            body = ("The container, its port, GPUs, keys and token go away; the workspace folder stays"
                    f"{': ' + selected.workspace if selected.workspace else ''}.")
        self.push_screen(Confirm(f"Remove {selected.name}?", body), confirmed)

    @work(thread=True, exit_on_error=False, group="action")
    def _act(self, job: Callable[[], object], done: str) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - PtdeskErrors and bugs alike become a notification
            self.post_message(ActionDone(None, exc))
            return
        self.post_message(ActionDone(done))

    @on(ActionDone)
    @while_running
    def _action_done(self, message: ActionDone) -> None:
        if message.error is not None:
            notify_error(self, message.error)
        elif message.text:
            self.notify(message.text, markup=False)
        self.request_list()

    def action_collaborators(self) -> None:
        from ptdesk.tui.screens.collaborators import Collaborators

        selected = self.table.selected
        self.push_screen(Collaborators(self.ws, selected.name if selected and selected.kind == "ssh" else None))

    def action_help(self) -> None:
        from ptdesk.tui.screens.help import Help

        self.push_screen(Help())
