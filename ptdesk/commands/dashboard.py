"""Bare `ptdesk`: open the live dashboard."""

from __future__ import annotations


def open_dashboard() -> None:
    """Run the dashboard until ctrl+q, over every workstation (the default one first). A bad
    config is reported by the CLI before anything starts; an unreachable engine is not an error
    here (the dashboard shows it on that workstation's rows and waits for it)."""
    import sys

    from ptdesk import collector
    from ptdesk.core.fleet import Fleet
    from ptdesk.errors import PtdeskError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # A full-screen app on a pipe writes escape codes into a file and waits for keys forever.
        raise PtdeskError("The dashboard needs a terminal, and this ptdesk has none (its input or output is "
                          "redirected).", "Run it in a terminal (over ssh: ssh -t), or use a command: ptdesk --help "
                          "lists them, e.g. ptdesk ls.")
    # Until the first frame the start-up only makes objects that live as long as the dashboard
    # (Textual's modules and classes, the styles, the widgets): ~150 collector rounds, one over
    # everything. The app says when the frame is up (PtdeskApp.first_frame_shown).
    with collector.paused():
        fleet = Fleet()
        default = fleet.config.default_workstation
        names = [default, *(name for name in fleet.names if name != default)]
        try:
            from ptdesk.tui.app import PtdeskApp

            PtdeskApp([fleet.workstation(name) for name in names],
                      choose=fleet.choose if len(names) > 1 else None).run()
        finally:
            fleet.close()
