"""What the main screen's live feeds (tui.live) post to it from their threads: immutable results,
never widgets. Dataclasses, so each says what it carries in one line, and each says which
workstation it is about (one set of feeds runs per workstation)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from textual.message import Message

from ptdesk.config import LOCAL
from ptdesk.core.base.models import Experiment
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.host.cgroups import ContainerStats
    from ptdesk.tui.feeds import GpuView

M = TypeVar("M")


def while_running(handler: Callable[[Any, M], None]) -> Callable[[Any, M], None]:
    """For handlers of feed results: one that arrives while the app shuts down finds its widgets
    gone already, and is dropped rather than raising NoMatches on the way out."""

    @functools.wraps(handler)
    def guarded(screen: Any, message: M) -> None:
        if screen.app.is_running:
            handler(screen, message)

    return guarded


@dataclass
class GpusSampled(Message):
    view: GpuView
    workstation: str = LOCAL


@dataclass
class ExperimentsListed(Message):
    items: tuple[Experiment, ...] | None  # None: the list could not be read (error says why)
    error: PtdeskError | None = None
    workstation: str = LOCAL


@dataclass
class StatsRead(Message):
    stats: dict[str, ContainerStats]  # container id -> CPU/memory/start
    workstation: str = LOCAL


@dataclass
class EngineChanged(Message):
    up: bool
    reason: str | None  # why it is unreachable
    version: str | None = None  # the engine's version, e.g. 20.10.24, once it answers
    workstation: str = LOCAL


@dataclass
class ContainerChanged(Message):
    """One of the engine's container events (start, die, destroy, …) for this instance."""

    action: str
    container_id: str
    name: str
    workstation: str = LOCAL
