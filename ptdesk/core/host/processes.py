"""Is a process of this machine still alive? (Launchers of records, holders of the GPU lock.)"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (another user's too: signal 0 is refused, but it exists); False once it
    is gone or a zombie (it has exited, only its parent has not collected it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
