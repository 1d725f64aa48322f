"""docker-py, imported once per process: without its SSH transport unless an ssh:// engine needs it.

`docker.transport` imports its SSH adapter, and with it paramiko and invoke (a third of the SDK's
import time), whenever paramiko can be imported, although only an `ssh://` DOCKER_HOST uses it. So
the first import for a local engine hides paramiko from that one import, in that thread only:
docker-py skips the adapter as it does where paramiko is not installed. ptdesk's own `ssh://`
workstations (ptdesk.core.engine.remote) import the adapter's module themselves, which works
either way. Every first import of the SDK in ptdesk goes through `docker_sdk`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

_LOCK = threading.Lock()


class _NoParamikoHere(MetaPathFinder):
    """Refuses `import paramiko` in the thread that imports the SDK (other threads are untouched)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname == "paramiko" and threading.get_ident() == self.thread:
            raise ModuleNotFoundError("paramiko is not needed for a local Docker engine", name=fullname)
        return None


def docker_sdk(ssh: bool = False) -> ModuleType:
    """The `docker` module; `ssh`: the caller talks to an ssh:// engine (its transport is loaded)."""
    if ssh or "docker" in sys.modules or os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        import docker  # (waits for another thread's import of it to finish)
        return docker
    with _LOCK:
        if "docker" not in sys.modules:
            finder = _NoParamikoHere()
            sys.meta_path.insert(0, finder)
            try:
                import docker
            finally:
                sys.meta_path.remove(finder)
    import docker
    return docker
