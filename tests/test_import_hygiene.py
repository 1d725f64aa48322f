"""The core is reachable without the TUI: importing it must not pull in textual (harlequin's rule).

Runs in a fresh interpreter: inside pytest, other tests may already have imported textual.
"""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO

_PROBE = r"""
import importlib, json, pkgutil, sys
import ptdesk.core
names = sorted(m.name for m in pkgutil.walk_packages(ptdesk.core.__path__, "ptdesk.core."))
for name in names + {extra}:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "textual": sorted(m for m in sys.modules if m.split(".")[0] == "textual")}}))
"""


def _probe(extra: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(extra=extra)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_core_modules_do_not_import_textual() -> None:
    result = _probe(["ptdesk.config", "ptdesk.errors"])
    # Guard against a vacuous pass: the walk must really have found the core modules.
    assert {"ptdesk.core.engine", "ptdesk.core.images", "ptdesk.core.workstation"} <= set(result["modules"])
    assert result["textual"] == []


def test_cli_commands_do_not_import_textual() -> None:
    """`ptdesk doctor` and friends stay fast: only the bare `ptdesk` (dashboard) loads textual."""
    result = _probe(["ptdesk.cli"])
    assert result["textual"] == []
