"""The Site: the narrow thing every operation takes — a workstation's name, config, store and engine.

Operations (launch, grants, rotation, listing, reconcile, the kinds, ...) never name the
Workstation that opens the door to them: they take a Site, the way docker-py's collections take a
client they never import. The Workstation is one (structurally); a test can pass any object with
these things. What an operation needs beyond them (the driver for a warning, an engine connection
of its own for the watcher thread) is passed to it explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ptdesk.config import Config
    from ptdesk.core.base.gpu_models import GpuInventory, GpuSnapshot
    from ptdesk.core.engine.client import Engine
    from ptdesk.core.store.state import Store


class Site(Protocol):
    """One engine and what this ptdesk home keeps about it."""

    @property
    def name(self) -> str: ...  # "local", or the [workstations.NAME] it is

    @property
    def config(self) -> Config: ...  # this workstation's view of the home's config

    @property
    def store(self) -> Store: ...  # its SQLite store (opened on first use)

    @property
    def engine(self) -> Engine: ...  # its engine (connected on first use; EngineUnavailable if down)

    @property
    def is_remote(self) -> bool: ...  # reached over ssh:// (files and /proc there are not ours)

    # Its GPUs, as one reading (the local NVML sampler, or a remote box's sampler container): every
    # operation that gives GPUs out (launch, start on other GPUs, the queue, reservations) asks here.
    def gpu_inventory(self) -> GpuInventory: ...  # what may be given (unclaimed use blocks a GPU)

    def gpu_snapshot(self) -> GpuSnapshot: ...  # what each GPU is doing, processes attributed


class OwnSite(Site, Protocol):
    """A Site a long-running thread holds for itself (the event watcher): it can drop a broken
    engine connection, and make another Site of its own for a helper thread."""

    def drop_engine(self) -> None: ...

    def fork(self) -> OwnSite: ...

    def close(self) -> None: ...
