"""Text that came from outside ptdesk, made safe to print.

Labels, image names and event attributes of containers ptdesk did not make are written by whoever
can use the engine. Printed raw, an escape sequence in them reaches the reader's terminal (to move
the cursor, retitle the window, rewrite what was printed before). Every such text goes through
`printable` before it leaves the core.
"""

from __future__ import annotations

import unicodedata

# Control characters (C0, DEL, C1) and invisible format characters (bidi overrides and the like,
# which can make a name read as another one).
_UNSAFE_CATEGORIES = {"Cc", "Cf"}


def printable(text: str | None, placeholder: str = "?") -> str:
    """`text` with every control and format character replaced by `placeholder`."""
    if not text:
        return text or ""
    if text.isprintable():
        return text
    return "".join(placeholder if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
