"""Bare `ptdesk`: open the live dashboard."""

from __future__ import annotations


def open_dashboard() -> None:
    """Run the dashboard until ctrl+q. A bad config is reported by the CLI before anything starts;
    an unreachable engine is not an error here (the dashboard shows it and waits for it)."""
    from ptdesk.core.workstation import Workstation

    ws = Workstation()
    try:
        from ptdesk.tui.app import PtdeskApp

        PtdeskApp(ws).run()
    finally:
        ws.close()
