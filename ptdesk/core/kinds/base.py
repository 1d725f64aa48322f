"""The one interface every experiment kind implements: everything that differs by kind lives behind it.

A kind says which image it runs (and where its Dockerfile folder is: images/<name>/), how its
container is set up and which secrets go in before start (`plan`), how to prove the service lets a
person in (`wait_ready`), how a person connects (`access`: one value with the connect line, the rows
people read and the JSON scripts read), how idle it is (`idle`, for cull), what adoption reads back
from a container whose record was lost (`read_back`), and what it does after every start
(`after_start`). Hardening, limits, labels, GPUs and rollback are the same for all kinds (launch.py).

The methods are abstract: a kind that forgets one cannot even be instantiated, so no code path
has to guess ("not Jupyter, so it must be SSH").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ptdesk.config import Config
from ptdesk.core.access.authorized_keys import GrantedKey
from ptdesk.core.base.models import Access, LaunchSpec
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.store.state import ExperimentRecord

if TYPE_CHECKING:
    from ptdesk.core.site import Site


@dataclass(frozen=True)
class Plan:
    """Kind-specific container settings, with the secrets already generated."""

    container_port: str | None  # None: a kind with no door (a batch job), nothing published
    cap_add: tuple[str, ...] = ()
    user: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    tmpfs: dict[str, str] = field(default_factory=dict)
    files: tuple[tuple[str, tuple[FileSpec, ...]], ...] = ()  # (destination folder, files)
    host_public_key: str | None = None
    command: tuple[str, ...] | None = None  # the service's command line; None: the image's CMD
    working_dir: str | None = None  # None: the image's
    entrypoint: tuple[str, ...] | None = None  # None: the image's
    archives: tuple[tuple[str, Path], ...] = ()  # (destination folder, tar file) placed before start


@dataclass(frozen=True)
class Recovered:
    """What adoption read back from a container ptdesk made but lost the record of."""

    host_public_key: str | None = None
    extra_keys: tuple[str, ...] = ()
    # Host-side files to write again under experiments/<name>/: (filename, text, mode).
    files: tuple[tuple[str, str, int], ...] = ()
    # Collaborator keys found inside, by the marker ptdesk writes on them: restored as grants.
    collaborators: tuple[GrantedKey, ...] = ()
    # Key lines that were neither the owner's, brought by the owner, nor marked: not kept (why).
    dropped: tuple[str, ...] = ()
    # Collaborator accounts found inside (name, uid): a restored person keeps the uid their files have.
    accounts: tuple[tuple[str, int], ...] = ()


class Kind(ABC):
    name: ClassVar[str]  # the CLI subcommand, the ptdesk.kind label, images/<name>/
    title: ClassVar[str]  # how people call it: "SSH", "Jupyter"
    summary: ClassVar[str]  # one line for `ptdesk new NAME --help` and the form
    container_port: ClassVar[str | None]  # e.g. "22/tcp": the port published on bind_address
    # Secrets placed before start that never change afterwards (host key, token): the seal covers
    # them (ptdesk.core.access.seal), so a copy of the labels on another container does not verify.
    sealed_paths: ClassVar[tuple[str, ...]]
    accepts_pubkeys: ClassVar[bool] = False  # `new --pubkey FILE` authorises the owner's own key
    grants_logins: ClassVar[bool] = False  # collaborators can be granted logins to it
    # The idle cull may stop it. A kind that ends by itself (a batch job, with its time limit)
    # says False: the cull never judges, warns or stops it.
    cullable: ClassVar[bool] = True
    mounts_vscode_cache: ClassVar[bool] = False  # the workstation's VS Code Server cache, read-only
    has_door: ClassVar[bool] = True  # a service people reach (ssh, a URL); False: a batch job, made by `ptdesk run`
    own_image: ClassVar[bool] = True  # built from images/<name>/ (`ptdesk images build NAME`)

    def image(self, config: Config) -> str:
        """The image it runs: `<name>_image` from the config, else ptdesk's own build."""
        return config.images.get(self.name) or default_image(self.name)

    @abstractmethod
    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        """Generate this launch's secrets, keep the host-side copies, say how to run the service."""

    def warm_up(self) -> None:
        """Import what `wait_ready` needs. The launch calls this in a thread of its own while the
        engine starts the container, so the imports overlap the start instead of following it."""
        return None  # most kinds' proofs need nothing heavy

    @abstractmethod
    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        """Return once a client really gets in; raise LaunchFailed otherwise."""

    @abstractmethod
    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        """How a person reaches it; None while there is no port or secret to reach it with.
        Pure: a listing runs often and beside `ptdesk rm`, so this never writes files."""

    @abstractmethod
    def idle(self, site: Site, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        """Seconds since someone last used it (None: cannot tell, never culled) and how it was told."""

    @abstractmethod
    def read_back(self, site: Site, container_id: str, labels: Mapping[str, str]) -> Recovered:
        """The secrets a lost record needs, read from the container (running or stopped); raises
        PtdeskError when they are unreadable (the container then stays an orphan)."""

    @abstractmethod
    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        """After a launch, a start or an adoption (the port is known): keep the files a person's
        client needs in step."""


def sealed_contents(kind: Kind, plan: Plan) -> list[bytes]:
    """The bytes of the kind's sealed files as the plan places them, in `sealed_paths` order."""
    placed = {f"{dest.rstrip('/')}/{f.name}": f.data for dest, files in plan.files for f in files}
    return [placed[path] for path in kind.sealed_paths]


def default_image(kind: str) -> str:
    return f"ptdesk/{kind}:latest"


