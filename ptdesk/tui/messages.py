"""What the main screen's live feeds (tui.live) post to it from their threads: immutable results,
never widgets. Dataclasses, so each says what it carries in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from ptdesk.core.models import Experiment
from ptdesk.errors import PtdeskError
from ptdesk.tui.feeds import GpuView

if TYPE_CHECKING:
    from ptdesk.core.stats import ContainerStats


@dataclass
class GpusSampled(Message):
    view: GpuView


@dataclass
class ExperimentsListed(Message):
    items: tuple[Experiment, ...] | None  # None: the list could not be read (error says why)
    error: PtdeskError | None = None


@dataclass
class StatsRead(Message):
    stats: dict[str, ContainerStats]  # container id -> CPU/memory/start


@dataclass
class EngineChanged(Message):
    up: bool
    reason: str | None  # why it is unreachable
    version: str | None = None  # the engine's version, e.g. 20.10.24, once it answers


@dataclass
class ContainerChanged(Message):
    """One of the engine's container events (start, die, destroy, …) for this instance."""

    action: str
    container_id: str
    name: str
