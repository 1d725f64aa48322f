"""Python's cyclic garbage collector, paused while a command starts up.

A start-up (the dashboard's until its first frame, a launch until it returns) is a burst of imports
and objects that live as long as the command: the collector's passes over them while they are made
free nothing and cost a sixth of that time on the 2-core box. Paused there, the start-up's objects
are frozen when it ends (the collector need not walk them again) and it collects from then on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for this block (unless something else keeps it off already); on again at
    the end at the latest, also when the block fails."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def start_up_done() -> None:
    """The start-up is over: freeze what it made and collect again. Nothing when not paused."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
