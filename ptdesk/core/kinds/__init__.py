"""The experiment kinds ptdesk can launch: one module each behind ONE interface (kinds.base.Kind).

Everything that differs by kind is the kind's: adding one is a module here, an entry in REGISTRY
below, images/<name>/ with its Dockerfile, and its tests. The registry feeds the CLI's `new`
subcommands, the dashboard's form, `images build` targets and the `<name>_image` settings. Its
entries are plain text, so `ptdesk new KIND --help` imports no kind module (ptdesk.core.kinds.registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ptdesk.core.kinds.registry import KindEntry, KindRegistry
from ptdesk.errors import InvalidInput

if TYPE_CHECKING:
    from ptdesk.config import Config
    from ptdesk.core.kinds.base import Kind, Plan, Recovered

# One entry per kind.
REGISTRY = KindRegistry(
    KindEntry("ssh", "ptdesk.core.kinds.ssh:SSH", title="SSH",
              summary="A hardened SSH server: key-only login, pinned host key, non-root user.",
              accepts_pubkeys=True, grants_logins=True),
    KindEntry("jupyter", "ptdesk.core.kinds.jupyter:JUPYTER", title="Jupyter",
              summary="JupyterLab as your user, with a token only you can read."),
    KindEntry("code", "ptdesk.core.kinds.code:CODE", title="VS Code",
              summary="VS Code in the browser as your user, with a password only you can read.",
              optional_image=True),
    KindEntry("job", "ptdesk.core.kinds.job:JOB", title="Job",
              summary="A batch job: one command, detached, on code frozen at submit (ptdesk run).",
              has_door=False, own_image=False),
)


def get_kind(name: str) -> Kind:
    """The kind called `name` (its module imported now); InvalidInput naming the kinds there are otherwise."""
    if name not in REGISTRY:
        raise InvalidInput(f"Unknown kind {name!r}.", f"Use one of: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def kind_names() -> tuple[str, ...]:
    """The kinds built from images/<name>/ (`ptdesk images build` targets)."""
    return tuple(entry.name for entry in REGISTRY.entries() if entry.own_image)


def build_target(config: Config, image: str) -> str | None:
    """The `ptdesk images build` target that makes `image` (a job runs the SSH kind's), if one does."""
    return next((name for name in kind_names() if REGISTRY[name].image(config) == image), None)


def door_kinds() -> tuple[KindEntry, ...]:
    """The kinds `ptdesk new` and the form launch: those a person reaches (a job is `ptdesk run`'s)."""
    return tuple(entry for entry in REGISTRY.entries() if entry.has_door)


def __getattr__(name: str) -> Any:
    """Kind, Plan and Recovered on first use: the interface imports the engine's and keys' code."""
    if name in ("Kind", "Plan", "Recovered"):
        from ptdesk.core.kinds import base
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REGISTRY", "Kind", "KindEntry", "Plan", "Recovered", "build_target", "door_kinds", "get_kind", "kind_names"]
