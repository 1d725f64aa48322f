"""The Workstation's doors to collaborators: add, grant, revoke, rotate, export, expiry.

A mixin of the Workstation (ptdesk.core.workstation): each door imports its operation on first
use and hands it the Workstation as the Site it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptdesk.core.access.accounts import Ended
    from ptdesk.core.base.people_models import Collaborator, ContainerRotation, RotationResult
    from ptdesk.core.collaborators.export import Exported
    from ptdesk.core.site import Site


class CollaboratorDoors:
    """Collaborators and their keys, on this workstation's experiments."""

    def collaborators(self: Site) -> list[Collaborator]:
        from ptdesk.core.collaborators import grants
        return grants.list_collaborators(self)

    def pending_grants(self: Site, name: str) -> tuple[str, ...]:
        from ptdesk.core.collaborators import grants
        return grants.pending_grants(self, name)

    def add_collaborator(self: Site, name: str, pubkey_text: str | None = None,
                         expires: str | None = None) -> Collaborator:
        from ptdesk.core.collaborators import grants
        return grants.add(self, name, pubkey_text, expires)

    def remove_collaborator(self: Site, name: str) -> list[Ended]:
        """Revoke everywhere (ending what they run), then forget them; what was ended, by experiment."""
        from ptdesk.core.collaborators import grants
        return grants.remove(self, name)

    def grant(self: Site, name: str, experiment: str) -> bool:
        from ptdesk.core.collaborators import grants
        return grants.grant(self, name, experiment)

    def revoke(self: Site, name: str, experiment: str) -> Ended:
        """Refuse their new logins and end their sessions and processes there; what was ended."""
        from ptdesk.core.collaborators import grants
        return grants.revoke(self, name, experiment)

    def end_expired(self: Site) -> list[Ended]:
        """End what expired collaborators still run (sshd already refuses their logins), and what
        any collaborator uid without a grant runs."""
        from ptdesk.core.collaborators import expiry
        return expiry.end_revoked(self)

    def finish_pending(self: Site, experiment: str) -> dict[str, ContainerRotation]:
        """Finish key rotations that waited for `experiment` to run again, by collaborator."""
        from ptdesk.core.collaborators import rotation
        return rotation.finish_pending(self, experiment)

    def rotate(self: Site, name: str, expires: str | None = None, pubkey_text: str | None = None,
               end_sessions: bool = False) -> RotationResult:
        """A new key everywhere `name` has access, never locking them out (ptdesk.core.collaborators.rotation);
        `pubkey_text` for a person who brings their own key; `end_sessions` when the old key is compromised."""
        from ptdesk.core.collaborators import rotation
        return rotation.rotate(self, name, expires, pubkey_text, end_sessions)

    def running_processes(self: Site, name: str) -> dict[str, tuple[str, ...]]:
        """What `name` runs in each experiment they are granted (what end_sessions would end)."""
        from ptdesk.core.access import accounts
        return accounts.running_processes(self.engine, self.store, name)

    def export_collaborator(self: Site, name: str, folder: str | Path, dest: str | None = None,
                            jump: str | None = None) -> Exported:
        from ptdesk.core.collaborators import export
        return export.export(self, name, folder, dest, jump)

