"""The machine-wide GPU allocation lock, shared by every user's ptdesk and every store.

GPUs are the machine's, not one user's: a launch that asks for GPUs holds this lock from reading
the holds (its records and every container's ptdesk.gpus label) until its own container exists
with its label, which is how the other users' ledgers see the reservation.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ptdesk.errors import PtdeskError

# One lock for the whole machine (every user's ptdesk, every store): GPUs are the machine's.
GPU_LOCK_NAME = "ptdesk-gpus.lock"


@contextmanager
def machine_gpu_lock() -> Iterator[None]:
    """The machine-wide GPU allocation lock (flock), shared by every user's ptdesk and store.

    A launch holds it from reading the GPU holds until its container exists with its ptdesk.gpus
    label; that label is how other users' ledgers see the reservation.
    """
    fd = _open_lock_file(_lock_dir() / GPU_LOCK_NAME)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_dir() -> Path:
    run_lock = Path("/run/lock")
    return run_lock if run_lock.is_dir() and os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())


def _open_lock_file(path: Path) -> int:
    """Open (making it if needed) the shared lock file, safely in a world-writable folder.

    Read-only is enough to flock, so the file is 0644 whatever the umask, and every user can open
    it. O_NOFOLLOW: a planted symlink is refused. An existing file is opened without O_CREAT,
    which fs.protected_regular would refuse for another user's file in a sticky folder.
    O_NONBLOCK: a planted FIFO cannot make the open hang (checked to be a regular file after).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    hint = f"Ask the machine's administrator to remove {path}; ptdesk makes it again."
    for _ in range(5):
        try:
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                os.fchmod(fd, 0o644)
        except FileExistsError:
            continue  # another launch made it just now: open theirs
        except OSError as exc:
            raise PtdeskError(f"The GPU lock {path} cannot be opened ({exc.strerror}).", hint) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PtdeskError(f"The GPU lock {path} is not a regular file.", hint)
        return fd
    raise PtdeskError(f"The GPU lock {path} keeps appearing and disappearing.", hint)
