"""The ws: one object that holds the resolved config, the state store and the engine connection.

The CLI and the dashboard both start from a Workstation; the engine is connected on first use so that
commands that do not need it (and the dashboard's GPU panel) work while the engine is down.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from ptdesk.config import Config, load_config
from ptdesk.core.engine import Engine
from ptdesk.core.state import Store

if TYPE_CHECKING:
    from ptdesk.core.gpu import GpuSampler


class Workstation:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or load_config()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    @cached_property
    def store(self) -> Store:
        return Store(self.config.state_path)

    @cached_property
    def gpus(self) -> GpuSampler:
        """The process's one NVML sampler (NVML is initialised once, lazily)."""
        from ptdesk.core.gpu import GpuSampler

        return GpuSampler()

    @property
    def engine(self) -> Engine:
        """The connected engine; raises EngineUnavailable (one clear sentence) when it is down."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = Engine.connect()
            return self._engine

    def drop_engine(self) -> None:
        """Forget the connection (after the engine went away) so the next use reconnects."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.close()
            self._engine = None

    def close(self) -> None:
        self.drop_engine()
        if "gpus" in self.__dict__:
            self.gpus.close()
        if "store" in self.__dict__:
            self.store.close()
