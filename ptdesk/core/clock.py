"""The wall clock of GPU sharing (holds after stop; reservations and the queue next).

One function, so that every decision that depends on "how long ago" reads the same clock, and a
test moves time forward instead of sleeping until a hold expires (it replaces `now` here).
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch."""
    return time.time()
