"""The terminal route: a notice the dashboard shows is also raised by the terminal it runs in.

OSC 9 (iTerm2, Windows Terminal, WezTerm, kitty, foot, ghostty: a desktop notification), OSC 777
(urxvt, foot, Konsole, VTE terminals) or a plain BEL, as the person chose (`ptdesk notify terminal`).
Inside tmux an OSC is wrapped in tmux's passthrough (it needs `set -g allow-passthrough on`); a BEL
goes through tmux as it is. The text is cut and stripped of control characters: it ends inside an
escape sequence, where one would end the sequence early or start another.
"""

from __future__ import annotations

import json
from pathlib import Path

from ptdesk.core.base.private_files import write_secret
from ptdesk.errors import InvalidInput

STYLES = ("osc9", "osc777", "bel", "off")
DEFAULT_STYLE = "bel"


def _clean(text: str, limit: int = 200) -> str:
    return "".join(ch for ch in text if ch.isprintable()).replace(";", ",")[:limit]


def alert_sequence(style: str, title: str, body: str, in_tmux: bool = False) -> str:
    """What to write to the terminal for one notice ("" for off)."""
    if style == "bel":
        return "\a"
    if style == "osc9":
        sequence = f"\x1b]9;{_clean(title)}: {_clean(body)}\a"
    elif style == "osc777":
        sequence = f"\x1b]777;notify;{_clean(title)};{_clean(body)}\a"
    else:
        return ""
    if in_tmux:
        return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def _path(home: Path) -> Path:
    return home / "notify" / "terminal.json"


def terminal_style(home: Path) -> str:
    try:
        style = json.loads(_path(home).read_text()).get("style")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_STYLE
    return style if style in STYLES else DEFAULT_STYLE


def set_terminal_style(home: Path, style: str) -> None:
    if style not in STYLES:
        raise InvalidInput(f"'{style}' is not a terminal alert ptdesk knows.", f"Use one of: {', '.join(STYLES)}.")
    write_secret(_path(home), json.dumps({"style": style}).encode())
