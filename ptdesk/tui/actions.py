"""The dashboard's one table of actions: it makes the key bindings, the footer labels, the command
palette's entries and the help screen, so a key is described in exactly one place.

Each action belongs to a scope: "main" ones act on the main screen's selection or layout and are
bound on that screen only (so `d` on the collaborators list cannot remove an experiment: the
binding is simply not there), "collab" ones on the collaborators screen; "app" ones apply
everywhere. Each screen's footer starts with `? Help`, so it stays on screen however narrow the
terminal is, and `?` shows that screen's keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from textual.app import SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode

Scope = Literal["main", "collab", "reserve", "cull", "usage", "app"]


@dataclass(frozen=True)
class Action:
    scope: Scope
    key: str  # Textual key name(s) for the binding, comma-separated
    action: str  # the node's action_<action> method
    label: str  # the footer's word for it
    help: str  # what it does, for the help screen and the palette's second line
    title: str = ""  # the palette's entry; empty: not offered there
    show: bool = True  # listed in the footer
    keys_shown: str = ""  # how the help screen writes the key, when not the key itself
    bound: bool = True  # False: Textual binds it itself (ctrl+p, ctrl+q); here for the help screen


ACTIONS: tuple[Action, ...] = (
    Action("main", "n", "new", "New", "Start a new experiment with good defaults", "New experiment"),
    Action("main", "i", "details", "Details", "Details of the selected experiment: connect line, host key, "
           "limits, GPUs", "Experiment details", keys_shown="enter / i"),
    Action("main", "c", "copy", "Copy", "Copy the selected experiment's connect line", "Copy connect line"),
    Action("main", "s", "stop_start", "Stop/Start", "Stop the selected experiment, or start it when it is "
           "stopped", "Stop or start"),
    Action("main", "d", "remove", "Remove", "Remove the selected experiment (asks first)", "Remove experiment"),
    Action("main", "k", "collaborators", "Collab", "Collaborators: add, grant, revoke, rotate keys, export, "
           "remove", "Collaborators"),
    Action("main", "r", "reservations", "Reserve", "GPU reservations of the selected experiment's workstation: "
           "a per-GPU timeline; add, cancel, end", "GPU reservations"),
    Action("main", "x", "keep", "Keep", "Keep the selected experiment from the idle cull for an hour (as "
           "ptdesk keep NAME; up to the cull's keep_max)", "Keep from the idle cull", show=False),
    Action("main", "I", "idle_cull", "Idle", "The idle cull: what it would stop, and when (as ptdesk cull "
           "--dry-run); x keeps one", "What the idle cull would stop", show=False),
    Action("main", "u", "usage", "Usage", "The week's GPU use on the selected experiment's workstation: a bar "
           "per person (busy, held idle), held, busy, reserved-unused hours", "GPU usage this week"),
    Action("main", "slash", "filter", "Filter", "Show only the experiments that match some text",
           "Filter experiments", keys_shown="/"),
    Action("main", "l", "logs", "Logs", "Follow the selected experiment's log full-screen (escape returns)",
           "Logs full-screen"),
    Action("main", "t", "shell", "Shell", "Open a shell in the selected experiment; exit comes back here",
           "Open a shell"),
    Action("main", "f", "filter_log", "Filter log", "Filter the log: show only the lines that contain some "
           "text (enter applies, escape clears; another experiment starts unfiltered)", "Filter the log"),
    Action("main", "j", "run_job", "Run job", "Run a batch job: a command on a snapshot of a folder, detached "
           "(GPUs, an experiment's environment, a time limit)", "Run a batch job", show=False),
    Action("main", "X", "cancel_job", "Cancel job", "Cancel the selected job (SIGINT, then SIGTERM and SIGKILL "
           "a grace apart), or take it out of the GPU queue", "Cancel job", show=False),
    Action("main", "p", "pause_log", "Pause", "Pause or resume the log", show=False),
    Action("main", "escape", "back", "Back", "Close the log filter, the full-screen log or the experiments "
           "filter, one at a time", show=False),
    Action("collab", "a", "add", "Add", "Add a collaborator: a new key pair, or their own public key file; "
           "an expiry if you want one"),
    Action("collab", "g", "grant", "Grant", "Let the selected person log in to an SSH experiment"),
    Action("collab", "x", "revoke", "Revoke", "End the selected person's access to an experiment (their "
           "sessions end too)"),
    Action("collab", "r", "rotate", "Rotate", "A new key for the selected person everywhere they have access"),
    Action("collab", "e", "export", "Export", "Write the selected person's key and ssh config into a folder"),
    Action("collab", "d", "remove", "Remove", "Remove the selected person (asks first; their access ends)"),
    Action("collab", "R", "reload", "Reload", "Read the list again", show=False),
    Action("collab", "escape,q", "app.pop_screen", "Back", "Back to the dashboard", keys_shown="escape / q"),
    Action("reserve", "a", "add", "Add", "Reserve GPUs (ids, any:N or all) from a start to an end"),
    Action("reserve", "c", "cancel_reservation", "Cancel", "Cancel the selected reservation (one that has not "
           "started; yours)"),
    Action("reserve", "e", "end_reservation", "End now", "End the selected started reservation now (yours)"),
    Action("reserve", "R", "reload", "Reload", "Read the reservations again", show=False),
    Action("reserve", "escape,q", "app.pop_screen", "Back", "Back to the dashboard", keys_shown="escape / q"),
    Action("cull", "x", "keep", "Keep", "Keep the selected experiment from the idle cull for an hour"),
    Action("cull", "R", "reload", "Reload", "Read it again", show=False),
    Action("cull", "escape,q", "app.pop_screen", "Back", "Back to the dashboard", keys_shown="escape / q"),
    Action("usage", "R", "reload", "Reload", "Read the usage history again"),
    Action("usage", "escape,q", "app.pop_screen", "Back", "Back to the dashboard", keys_shown="escape / q"),
    Action("app", "question_mark", "help", "Help", "This help: what every key here does", "Help",
           keys_shown="?", show=False),
    Action("app", "ctrl+p", "command_palette", "Palette", "The command palette", bound=False),
    Action("app", "ctrl+q", "quit", "Quit", "Quit (containers keep running)", bound=False),
)


def bindings(scope: Scope) -> list[Binding]:
    """The BINDINGS of the node that carries `scope`'s actions; a screen's begin with `? Help` (the
    app binds `?`; this only puts it first in the footer, where a narrow terminal cannot cut it)."""
    first = [Binding("question_mark", "app.help", "Help")] if scope != "app" else []
    return first + [Binding(a.key, a.action, a.label, show=a.show) for a in ACTIONS if a.scope == scope and a.bound]


def palette_commands(scope: Scope, node: DOMNode) -> Iterator[SystemCommand]:
    """The palette's entries for `scope`, calling `node`'s actions (the palette calls them directly)."""
    for a in ACTIONS:
        if a.scope == scope and a.title:
            yield SystemCommand(a.title, a.help, getattr(node, f"action_{a.action}"))


def help_rows(scope: Scope = "main") -> Iterator[tuple[str, str]]:
    """(key as a person types it, what it does) for `scope`'s actions, then the app's."""
    for a in ACTIONS:
        if a.scope in (scope, "app"):
            yield a.keys_shown or a.key, a.help
