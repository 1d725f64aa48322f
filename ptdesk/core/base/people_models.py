"""Collaborators, key rotations and the audit log, as the CLI and the dashboard show them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Collaborator:
    name: str
    fingerprint: str
    public_key: str
    identity_file: str | None
    created: float
    expires: float | None = None
    grants: tuple[str, ...] = ()

    def expired(self, now: float | None = None) -> bool:
        """Their key no longer logs in anywhere (sshd refuses it; ptdesk ended what it ran)."""
        return self.expires is not None and self.expires <= (time.time() if now is None else now)


@dataclass(frozen=True)
class ContainerRotation:
    """How a key rotation went in one container (ptdesk.core.collaborators.rotation)."""

    name: str
    status: Literal["rotated", "pending", "failed"]  # pending: the old key still works there
    verified: bool  # the new key logged in and the old one was refused
    detail: str

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "verified": self.verified, "detail": self.detail}


@dataclass(frozen=True)
class RotationResult:
    name: str
    old_fingerprint: str
    fingerprint: str
    identity_file: str | None
    containers: tuple[ContainerRotation, ...]
    resumed: bool = False  # an unfinished earlier rotation was finished instead of starting a new one

    @property
    def unfinished(self) -> tuple[ContainerRotation, ...]:
        return tuple(c for c in self.containers if c.status != "rotated")

    def to_json(self) -> dict:
        return {"name": self.name, "old_fingerprint": self.old_fingerprint, "fingerprint": self.fingerprint,
                "identity_file": self.identity_file, "resumed": self.resumed,
                "containers": [c.to_json() for c in self.containers]}


@dataclass(frozen=True)
class AuditEntry:
    time: float
    actor: str
    action: str
    target: str
    detail: dict = field(default_factory=dict)
