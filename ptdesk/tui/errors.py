"""PtdeskErrors (and ptdesk's own bugs) as notifications: cause and hint, never a crash.

Messages often quote Docker or SSH text, which may contain [brackets]: they are shown with markup
off so nothing from outside is ever interpreted. Background tasks that fail every time they run
(a poll each second) report through ErrorNotices, so one cause is one notification, not a stream.
"""

from __future__ import annotations

from textual.app import App

from ptdesk.errors import PtdeskError


def describe(exc: BaseException) -> tuple[str, str | None]:
    """(what happened, what to do) for a person."""
    if isinstance(exc, PtdeskError) and exc.message.strip():
        return exc.message, exc.hint
    if isinstance(exc, KeyboardInterrupt):
        return "It was interrupted before it finished; nothing it started was kept.", None
    if isinstance(exc, PtdeskError):  # never a failure without a sentence
        return f"It failed without saying why ({type(exc).__name__}).", exc.hint or \
            "Try again; if it fails the same way, run ptdesk doctor."
    return (f"Something went wrong inside ptdesk: {exc!r}.",
            "This is a bug in ptdesk; the dashboard keeps running. Please report it with what you did.")


def notify_error(app: App, exc: BaseException, title: str = "ptdesk") -> None:
    message, hint = describe(exc)
    app.notify(f"{message}\n{hint}" if hint else message, title=title, severity="error", timeout=12,
               markup=False)


class ErrorNotices:
    """Failures of background tasks, each shown once until its task recovers.

    A source (a worker group: "gpus", "events", …) that fails the same way again stays quiet; so does
    one failing the way another source already said (a broken state database breaks several
    tasks at once). A different failure, or the same one after the source recovered, is shown.
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._showing: dict[str, tuple[str, str | None]] = {}  # source -> what it last said

    def report(self, source: str, exc: BaseException, title: str) -> None:
        said = describe(exc)
        already = said in self._showing.values()
        self._showing[source] = said
        if not already:
            notify_error(self._app, exc, title=title)

    def recovered(self, source: str) -> None:
        """The source worked again: its next failure is news."""
        self._showing.pop(source, None)
