"""Whose a container is: this user's (their store holds it), another user's (their ptdesk's, read-only
here), or nobody's provable. Used wherever an operation must refuse another user's container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_OWNER
from ptdesk.core.base.names import OWNER_RE, container_key, current_user
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import Conflict

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def find_container(site: Site, name: str) -> dict | None:
    """The engine's list entry for an experiment (same shape list_managed returns)."""
    return instance_containers(site).get(name)


def foreign_owner(container: dict | None) -> str | None:
    """The other user whose ptdesk made this container; None when it is this user's, or when no
    valid owner label says whose it is (an orphan, which this user may clean up)."""
    owner = ((container or {}).get("Labels") or {}).get(LABEL_OWNER) or ""
    return owner if OWNER_RE.fullmatch(owner) and owner != current_user() else None


def refuse_foreign(name: str, record: ExperimentRecord | None, container: dict | None,
                    hint: str | None = None) -> None:
    """Another user's container is theirs to change: their store holds its keys, token and grants."""
    owner = foreign_owner(container) if record is None else None
    if owner is not None:
        raise Conflict(f"{name!r} belongs to {owner}'s ptdesk.", hint or f"Ask {owner}, or use docker directly.")


def refuse_if_foreign(site: Site, name: str) -> None:
    """Conflict, saying whose it is, when `name` is another user's container (for commands such as
    grant that look only at this store and would otherwise just say "no such experiment")."""
    refuse_foreign(name, site.store.experiment(name), find_container(site, name))


def instance_containers(site: Site) -> dict[str, dict]:
    """The instance's managed containers by experiment name: one engine request, every user's."""
    return {container_key(c): c for c in site.engine.list_managed(site.config.instance)}

