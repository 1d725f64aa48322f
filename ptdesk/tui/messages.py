"""What the dashboard's thread workers post back to the UI thread: immutable results, never widgets."""

from __future__ import annotations

from textual.message import Message

from ptdesk.core.models import Experiment
from ptdesk.core.stats import ContainerStats
from ptdesk.errors import PtdeskError
from ptdesk.tui import feeds


class GpusSampled(Message):
    def __init__(self, view: feeds.GpuView) -> None:
        super().__init__()
        self.view = view


class ExperimentsListed(Message):
    def __init__(self, items: tuple[Experiment, ...] | None, error: PtdeskError | None = None) -> None:
        super().__init__()
        self.items, self.error = items, error


class StatsRead(Message):
    def __init__(self, stats: dict[str, ContainerStats]) -> None:
        super().__init__()
        self.stats = stats


class EngineChanged(Message):
    def __init__(self, up: bool, reason: str | None, info: feeds.EngineInfo | None = None) -> None:
        super().__init__()
        self.up, self.reason, self.info = up, reason, info


class ContainerEvent(Message):
    def __init__(self, action: str, container_id: str, name: str) -> None:
        super().__init__()
        self.action, self.container_id, self.name = action, container_id, name


class ActionDone(Message):
    def __init__(self, text: str | None, error: BaseException | None = None) -> None:
        super().__init__()
        self.text, self.error = text, error
