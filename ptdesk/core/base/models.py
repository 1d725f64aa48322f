"""Immutable snapshots that cross from the core into the CLI and the dashboard.

What every listing builds lives here. The GPU snapshots are in ptdesk.core.base.gpu_models and the
collaborator, rotation and audit ones in ptdesk.core.base.people_models: creating a dataclass costs
about a millisecond at import, and `ptdesk ls` uses none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ptdesk.config import Limits

# Labels every managed container carries (labels cannot change after create).
LABEL_MANAGED = "ptdesk.managed"
LABEL_INSTANCE = "ptdesk.instance"
LABEL_KIND = "ptdesk.kind"
LABEL_OWNER = "ptdesk.owner"
LABEL_NAME = "ptdesk.name"
LABEL_GPUS = "ptdesk.gpus"
LABEL_WORKSPACE = "ptdesk.workspace"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launch needs, validated, before anything is created."""

    kind: str
    name: str
    owner: str
    image: str
    gpus: str  # "none" | "all" | "auto" | "0,2"
    workspace: Path
    limits: Limits
    extra_keys: tuple[str, ...] = ()  # ssh: public keys the owner brought, authorised too
    auto_name: bool = False  # name was suggested, not typed: the launcher may pick the next free one
    queue: bool = False  # no GPU free now: file it in the GPU queue instead of failing
    gpu_memory: str | None = None  # --gpu-memory: free memory each GPU must have (ptdesk.core.gpu.ledger)
    notes: tuple[str, ...] = ()  # what the person should know about the defaults it got (said after the launch)
    # A batch job's (ptdesk run): its command, the code snapshot (a tar placed before start), extra
    # binds (host path, container path, "ro" | "rw") and environment.
    command: tuple[str, ...] = ()
    snapshot: Path | None = None
    mounts: tuple[tuple[str, str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    layer_from: str | None = None  # --like: the experiment container whose writable layer it starts with


@dataclass(frozen=True)
class Launched:
    """What a launch gives back: the ready experiment, and what the person should know about it
    (one sentence each, with the fix where there is one). Both front ends show the same words."""

    experiment: Experiment
    warnings: tuple[str, ...] = ()
    # Which GPUs auto / any:N chose and why ("the least loaded free ones: ..."); None otherwise.
    gpu_choice: str | None = None


@dataclass(frozen=True)
class Access:
    """How a person reaches one experiment, as its kind says (ptdesk.core.kinds): the one connect
    line (ssh command, URL), the rows people read (`ptdesk new`, the details screen) and the JSON
    object scripts read under the kind's name (`"ssh": {...}` in `ptdesk ls --json`)."""

    connect: str
    rows: tuple[tuple[str, str], ...]
    fields: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.fields)


@dataclass(frozen=True)
class EnvironmentMark:
    """An experiment's environment at a glance (ptdesk.core.environment.drift): cheap to list, no exec."""

    fingerprint: str | None  # of the image it was created from; None: the image recorded none
    image_id: str | None
    behind: bool = False  # its image is no longer the current build of the tag it was launched from
    changed: bool | None = None  # packages changed since launch, at the last check; None: never checked
    checked: float | None = None  # when that check ran
    cuda: str | None = None  # the image's CUDA (PyTorch's), "none" without PyTorch
    driver_warning: str | None = None  # one sentence when the host driver is older than that CUDA needs

    @property
    def marks(self) -> tuple[str, ...]:
        return tuple(word for word, on in (("behind", self.behind), ("changed", self.changed),
                                            ("driver", self.driver_warning)) if on)

    @property
    def text(self) -> str:
        """"3f2a9c0d1b7e", "3f2a9c0d1b7e behind,changed" or "-"."""
        return " ".join(filter(None, (self.fingerprint or "-", ",".join(self.marks)))) or "-"

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "image_id": self.image_id, "behind": self.behind,
                "changed": self.changed, "checked": self.checked, "cuda": self.cuda,
                "driver_warning": self.driver_warning}


def status_word(value: str) -> str:
    """The engine's "exited" is what a person calls stopped (ptdesk stop, or s): the word people
    read, in the CLI and the dashboard alike (JSON keeps the engine's word for scripts)."""
    return "stopped" if value == "exited" else value


def listing_mark(foreign: bool, unverified: bool, orphan: bool) -> str:
    """One word for what ptdesk knows of an experiment's ownership, the same in every listing: another
    user's; someone's that this home cannot prove it made (unverified); this home's record whose
    container is gone (orphan)."""
    return "other user" if foreign else "unverified" if unverified else "orphan" if orphan else ""


@dataclass(frozen=True)
class Experiment:
    """One managed container as ptdesk sees it: the engine's view joined with the state store."""

    name: str
    id: str
    kind: str
    owner: str
    image: str
    status: str
    gpus: tuple[int, ...] = ()
    created: float = 0.0
    workspace: str | None = None
    limits: Limits | None = None
    access: Access | None = None
    orphan: bool = False  # labelled container without a record (or the reverse)
    # Another user's container on the shared engine: listed (read-only) but never adopted or changed.
    foreign: bool = False
    # No record in this home's store: nothing proves this home made it (labels are not identity),
    # so it is listed read-only with no connect line (ptdesk.core.access.seal).
    unverified: bool = False
    environment: EnvironmentMark | None = None  # set by the listing (ptdesk.core.environment.drift.marked)
    # Who is logged in right now (SSH experiments of this home; ptdesk.core.access.sessions): the owner's
    # and collaborators' names; None when it cannot be seen from here.
    logged_in: tuple[str, ...] | None = None
    waiting: str | None = None  # in the GPU queue: why it waits (ptdesk.core.sharing.gpu_queue)

    @property
    def connect(self) -> str:
        """How to reach it, in one line: the ssh command or the Jupyter URL."""
        return self.access.connect if self.access else ""

    def to_json(self) -> dict:
        out: dict = {
            "name": self.name,
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "image": self.image,
            "status": self.status,
            "gpus": list(self.gpus),
        }
        if self.kind not in out:  # the kind's own object: "ssh": {...}, "jupyter": {...}
            out[self.kind] = self.access.to_json() if self.access else None
        if self.orphan:
            out["orphan"] = True
        if self.foreign:
            out["foreign"] = True
        if self.unverified:
            out["unverified"] = True
        if self.environment is not None:
            out["environment"] = self.environment.to_json()
        if self.logged_in is not None:
            out["logged_in"] = list(self.logged_in)
        if self.waiting is not None:
            out["waiting"] = self.waiting
        return out

