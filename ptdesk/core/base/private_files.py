"""Private files: 0700 folders, files written atomically with their mode from the first byte.

Keys, tokens, the store and every other secret ptdesk keeps on the host are written through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ptdesk.errors import BadKey


def ensure_private_dir(path: Path) -> Path:
    """Create a 0700 folder (and 0700 parents up to an existing one); tighten it if it is looser."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file atomically with `mode` from its first byte, in a 0700 folder."""
    ensure_private_dir(path.parent)
    write_atomically(path, data, mode)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write aside, then rename over: readers see the old file or the new one, never half of one,
    and the file has `mode` from its first byte (no window where it is readable). The folder is
    left as it is."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_private_file(path: Path) -> None:
    """Refuse to use a private key others can read (ssh itself would refuse it too)."""
    if path.stat().st_mode & 0o077:
        raise BadKey(f"{path} can be read by other users.", f"Fix it with: chmod 600 {path}")

