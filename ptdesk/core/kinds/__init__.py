"""The experiment kinds ptdesk can launch: one module each behind ONE interface (kinds.base.Kind).

Everything that differs by kind is the kind's: adding one is a module here, a line below,
images/<name>/ with its Dockerfile, and its tests. The registry feeds the CLI's `new`
subcommands, the dashboard's form, `images build` targets and the `<name>_image` settings.
"""

from __future__ import annotations

from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.kinds.code import CODE
from ptdesk.core.kinds.jupyter import JUPYTER
from ptdesk.core.kinds.ssh import SSH
from ptdesk.errors import InvalidInput

# One line per kind.
REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (SSH, JUPYTER, CODE)}


def get_kind(name: str) -> Kind:
    """The kind called `name`; InvalidInput naming the kinds there are otherwise."""
    kind = REGISTRY.get(name)
    if kind is None:
        raise InvalidInput(f"Unknown kind {name!r}.", f"Use one of: {', '.join(REGISTRY)}.")
    return kind


def kind_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


__all__ = ["REGISTRY", "Kind", "Plan", "Recovered", "get_kind", "kind_names"]
