"""PtdeskErrors (and ptdesk's own bugs) as notifications: cause and hint, never a crash.

Messages often quote Docker or SSH text, which may contain [brackets]: they are shown with markup
off so nothing from outside is ever interpreted.
"""

from __future__ import annotations

from textual.app import App

from ptdesk.errors import PtdeskError


def describe(exc: BaseException) -> tuple[str, str | None]:
    """(what happened, what to do) for a person."""
    if isinstance(exc, PtdeskError):
        return exc.message, exc.hint
    return (f"Something went wrong inside ptdesk: {exc!r}.",
            "This is a bug in ptdesk; the dashboard keeps running. Please report it with what you did.")


def notify_error(app: App, exc: BaseException, title: str = "ptdesk") -> None:
    message, hint = describe(exc)
    app.notify(f"{message}\n{hint}" if hint else message, title=title, severity="error", timeout=12,
               markup=False)
