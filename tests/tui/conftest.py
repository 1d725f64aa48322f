"""Fixtures for the dashboard tests: small labelled containers, NVML scenarios, a running app.

Everything runs on the real engine; NVML is replaced at the pynvml function boundary only
(tests/support/nvml_scenarios.py), and the app is driven through Textual's Pilot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pynvml
import pytest

from ptdesk.config import load_config
from ptdesk.core.workstation import Workstation
from tests.support.tuihelpers import nvml_scenarios


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Callable[[nvml_scenarios.Scenario], nvml_scenarios.Scenario]:
    """Install an NVML scenario (the only thing ever replaced in ptdesk's tests)."""

    def install(scenario: nvml_scenarios.Scenario) -> nvml_scenarios.Scenario:
        for name, fn in scenario.functions().items():
            monkeypatch.setattr(pynvml, name, fn)
        return scenario

    return install


@pytest.fixture
def tui_desk(ptdesk_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workstation]:
    """A Workstation for the app; the owner defaults to 'alice' so forms look the same on every machine."""
    monkeypatch.setenv("SUDO_USER", "alice")
    ws = Workstation(load_config(ptdesk_env))
    yield ws
    ws.close()
