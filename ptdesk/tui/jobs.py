"""One way to run a job in the background: a thread worker calls it, a JobDone message carries the
result (or the error) back to the node that started it, and that node settles it on the UI thread.

Every screen that acts through the core (the main screen, the new-experiment form, the
collaborators list) uses this instead of its own worker/message/notify trio. A node that starts
jobs handles JobDone with one line: `message.settle(self.app)`. A node that is gone by the time the job
ends never sees the message, so a dismissed form is never written to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from textual.app import App
from textual.dom import DOMNode
from textual.message import Message
from textual.worker import Worker

from ptdesk.tui.errors import notify_error

T = TypeVar("T")


@dataclass
class JobDone(Message, bubble=False):  # settled once, by the node that started it
    title: str  # what was done, as a person would name it: the error notification's title
    result: Any = None
    error: BaseException | None = None
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None

    def settle(self, app: App) -> None:
        """Hand the result to on_done, or the error to on_error (default: one notification)."""
        if self.error is not None:
            if self.on_error is not None:
                self.on_error(self.error)
            else:
                notify_error(app, self.error, title=self.title)
        elif self.on_done is not None:
            self.on_done(self.result)


def run_job(node: DOMNode, job: Callable[[], T], *, title: str, on_done: Callable[[T], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None, group: str = "job") -> Worker[None]:
    """Run `job()` in a thread worker of `node`; `node` gets JobDone when it returns or raises."""

    def work() -> None:
        try:
            result = job()
        except BaseException as exc:  # noqa: BLE001 - errors, bugs and interruptions alike are shown, never a crash
            done = JobDone(title, error=exc, on_done=on_done, on_error=on_error)
        else:
            done = JobDone(title, result=result, on_done=on_done, on_error=on_error)
        node.post_message(done)

    return node.run_worker(work, thread=True, exit_on_error=False, group=group, name=title)
