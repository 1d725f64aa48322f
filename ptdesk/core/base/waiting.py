"""How often to retry while waiting for a freshly started service to answer."""

from __future__ import annotations


def next_delay(waited: float) -> float:
    """Seconds to sleep before the next attempt, after `waited` seconds of waiting.

    Tight at first (sshd answers within a fraction of a second, JupyterLab within two), growing
    slowly so a slow start is not hammered, and never more than 0.25 s, so readiness is reported
    at most that late.
    """
    return min(0.05 + waited / 40, 0.25)
