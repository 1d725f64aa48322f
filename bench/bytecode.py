"""Compile the checkouts a benchmark times, as `pip install .` does for an installed ptdesk.

An editable checkout never caches its bytecode where PYTHONDONTWRITEBYTECODE is set (as in CI shells
and many containers): each `ptdesk` process would then compile every module it imports (about 0.15 s
for a launch's ~90 modules on the 2-core box), a cost no installed ptdesk pays, and a checkout with an
older __pycache__ would not pay it either. compileall writes the .pyc files whatever that variable says.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_checkouts(*roots: str | Path | None) -> None:
    """Compile `ptdesk/` under each checkout root given (None: skipped, for an absent --before)."""
    for root in roots:
        if root is not None and not compileall.compile_dir(Path(root) / "ptdesk", quiet=1):
            raise SystemExit(f"Could not compile {root}/ptdesk: fix the syntax error above first.")
