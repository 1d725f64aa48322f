"""Errors a person can cause or meet: one sentence of what happened, one of what to do.

Everything a user can trigger ends in a PtdeskError; the CLI prints `message` and `hint` and exits
non-zero, the dashboard shows them in a notification. Tracebacks are for ptdesk's own bugs only.
"""

from __future__ import annotations


class PtdeskError(Exception):
    """A failure with a user-facing message and a hint saying what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Which input caused it ("name", "cpus", "memory", ...), when one did: a form focuses it.
        self.field = field

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ConfigError(PtdeskError):
    """The TOML config or an environment setting has a value ptdesk cannot use."""


class EngineUnavailable(PtdeskError):
    """The Docker engine cannot be reached (down, wrong socket, no permission)."""

    exit_code = 3


class ImageMissing(PtdeskError):
    """The image a launch needs is not present on the engine."""


class NotFound(PtdeskError):
    """A named experiment, collaborator or file does not exist."""


class InvalidInput(PtdeskError):
    """A name, key, size or GPU list given by the user is malformed or not allowed."""

    exit_code = 2


class Conflict(PtdeskError):
    """The request collides with something that exists: a taken name, a held GPU."""


class GpusGone(Conflict):
    """A stopped experiment's GPUs were let go after its hold and someone else holds them now: the
    person chooses other GPUs, none, or the queue (the dashboard asks; the CLI names the flags)."""


class GpuUnavailable(PtdeskError):
    """The requested GPUs do not exist, are held, or the engine has no GPU runtime."""


class LaunchFailed(PtdeskError):
    """A container was created but its service never became ready; it was rolled back."""


class BadKey(PtdeskError):
    """A key file is malformed or has unsafe permissions."""

    exit_code = 2


def from_system_error(exc: BaseException) -> PtdeskError | None:
    """The machine's failures a person can cause or fix (a folder they may not write, a full disk,
    a damaged state database), as one sentence with a hint; None for anything else (a bug)."""
    import errno
    import sqlite3

    if isinstance(exc, PermissionError):
        where = exc.filename or "a file ptdesk needs"
        return PtdeskError(f"Permission denied on {where}.",
                           "Check that folder's owner and mode; ptdesk runs as you and keeps its files in PTDESK_HOME.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return PtdeskError("The disk is full.", "Free some space (old images: docker image prune) and try again.")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return PtdeskError(f"{exc.strerror or exc}{where}.", "Check that path and try again.")
    if isinstance(exc, sqlite3.Error):
        return PtdeskError(f"The state database failed: {exc}.",
                           "If another ptdesk held it for long, try again; otherwise run `ptdesk doctor`.")
    return None
