"""What differs between experiment kinds, behind one small interface the launcher uses.

A kind says which port its service listens on, which capabilities and user it needs, which secret
files go in before start, how to prove the service is ready, and how a person connects to it.
Everything else (hardening, limits, labels, GPUs, rollback) is shared in launch.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ptdesk.config import Config
from ptdesk.core.engine import FileSpec
from ptdesk.core.models import JupyterAccess, LaunchSpec, SshAccess
from ptdesk.core.state import ExperimentRecord


@dataclass(frozen=True)
class Plan:
    """Kind-specific container settings, with the secrets already generated."""

    container_port: str
    cap_add: tuple[str, ...] = ()
    user: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    tmpfs: dict[str, str] = field(default_factory=dict)
    files: tuple[tuple[str, tuple[FileSpec, ...]], ...] = ()  # (destination folder, files)
    host_public_key: str | None = None


class Kind(Protocol):
    name: str
    container_port: str

    def image(self, config: Config) -> str: ...

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        """Generate this launch's secrets, keep the host-side copies, say how to run the service."""
        ...

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        """Return once a client really gets in; raise LaunchFailed otherwise."""
        ...

    def access(self, config: Config, record: ExperimentRecord, host: str) -> SshAccess | JupyterAccess | None:
        ...


def get_kind(name: str) -> Kind:
    from ptdesk.core.jupyter import JUPYTER
    from ptdesk.core.sshd import SSH

    kinds: dict[str, Kind] = {"ssh": SSH, "jupyter": JUPYTER}
    return kinds[name]
