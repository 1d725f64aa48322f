"""The house rules a newcomer relies on: small modules, short functions, packages that say what they hold."""

from __future__ import annotations

import ast
import importlib
import pkgutil

import ptdesk.core
from tests.support.helpers import REPO

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> list:
    return sorted((REPO / "ptdesk").rglob("*.py"))


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    long_modules, long_functions = [], []
    for path in _sources():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(str(path.relative_to(REPO)))
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES):
                long_functions.append(f"{path.relative_to(REPO)}:{node.name}")
    assert long_modules == [] and long_functions == []


def test_every_core_package_and_module_says_what_it_is() -> None:
    """Each package of the core (and each module in it) opens with a docstring whose first line is
    a whole sentence: the folder names and those lines are the map (README: Where things live)."""
    missing, no_summary = [], []
    for info in pkgutil.walk_packages(ptdesk.core.__path__, "ptdesk.core."):
        module = importlib.import_module(info.name)
        doc = (module.__doc__ or "").strip()
        if not doc:
            missing.append(info.name)
        elif info.ispkg and not doc.splitlines()[0].rstrip().endswith("."):
            no_summary.append(info.name)
    assert missing == [] and no_summary == []
