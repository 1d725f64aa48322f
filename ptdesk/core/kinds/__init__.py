"""The experiment kinds ptdesk can launch: one module each behind ONE interface (kinds.base.Kind).

Everything that differs by kind is the kind's: adding one is a module here, a line below,
images/<name>/ with its Dockerfile, and its tests. The registry feeds the CLI's `new`
subcommands, the dashboard's form, `images build` targets and the `<name>_image` settings.
"""

from __future__ import annotations

from ptdesk.config import Config
from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.kinds.job import JOB
from ptdesk.core.kinds.jupyter import JUPYTER
from ptdesk.core.kinds.ssh import SSH
from ptdesk.errors import InvalidInput

# One line per kind.
REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (SSH, JUPYTER, JOB)}


def get_kind(name: str) -> Kind:
    """The kind called `name`; InvalidInput naming the kinds there are otherwise."""
    kind = REGISTRY.get(name)
    if kind is None:
        raise InvalidInput(f"Unknown kind {name!r}.", f"Use one of: {', '.join(REGISTRY)}.")
    return kind


def kind_names() -> tuple[str, ...]:
    """The kinds built from images/<name>/ (`ptdesk images build` targets)."""
    return tuple(name for name, kind in REGISTRY.items() if kind.own_image)


def build_target(config: Config, image: str) -> str | None:
    """The `ptdesk images build` target that makes `image` (a job runs the SSH kind's), if one does."""
    return next((name for name in kind_names() if REGISTRY[name].image(config) == image), None)


def door_kinds() -> tuple[Kind, ...]:
    """The kinds `ptdesk new` and the form launch: those a person reaches (a job is `ptdesk run`'s)."""
    return tuple(kind for kind in REGISTRY.values() if kind.has_door)


__all__ = ["REGISTRY", "Kind", "Plan", "Recovered", "build_target", "door_kinds", "get_kind", "kind_names"]
