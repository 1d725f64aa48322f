"""`t`: a shell in the selected experiment, in the dashboard's own terminal.

The dashboard suspends itself (Textual gives the terminal back as it was before the app started),
runs the Workstation's command line (an SSH experiment: OpenSSH's client, host key pinned, ptdesk's
key only; a Jupyter one on this machine: `docker exec` as its person in /workspace) and
draws itself again when the shell exits; its feeds keep running in their threads meanwhile. This
works wherever the terminal is a real one: a local console, `ssh -t`, tmux.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from textual.app import App, SuspendNotSupported

from ptdesk.core.base.models import Experiment

SSH_FAILED = 255  # OpenSSH's own exit status when it could not connect or log in


def shell_refusal(experiment: Experiment) -> str | None:
    """Why no shell opens in `experiment`, in one sentence; None when one can."""
    if experiment.foreign:
        return (f"{experiment.name} belongs to {experiment.owner}'s ptdesk: the key that logs in is theirs, "
                f"so ask {experiment.owner} for access (collaborators, k).")
    if experiment.status != "running":
        return f"{experiment.name} is {experiment.status}: start it first (s), then press t again."
    return None


def open_shell(app: App, name: str, argv: Sequence[str]) -> None:
    """Hand the terminal to `argv` until it exits, then come back to the dashboard."""
    outcome: int | OSError
    try:
        with app.suspend():
            # Inside the block nothing may raise: an exception there would leave the app suspended.
            outcome = _run(name, argv)
    except SuspendNotSupported:
        app.notify("This terminal cannot be handed to a shell; copy the connect line (c) and use it "
                   "in another one.", severity="warning")
        return
    if isinstance(outcome, OSError):
        app.notify(f"Could not run {argv[0]}: {outcome.strerror or outcome}. Install it on this machine "
                   f"({'OpenSSH' if argv[0] == 'ssh' else 'the Docker'} client).", severity="error", markup=False)
    elif outcome == SSH_FAILED and argv[0] == "ssh":
        # What ssh printed was on the terminal the dashboard has just drawn over: say it again here.
        app.notify(f"ssh could not log in to {name} (exit {SSH_FAILED}). Try its connect line (c) in "
                   "another terminal to see why.", severity="error", markup=False)


def _run(name: str, argv: Sequence[str]) -> int | OSError:
    try:
        print(f"ptdesk: a shell in {name}; exit (or ctrl+d) returns to the dashboard.", flush=True)
        return subprocess.run(list(argv), check=False).returncode
    except OSError as exc:
        return exc
