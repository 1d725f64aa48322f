"""The `[cull]` table of config.toml: what idle means, per experiment kind, and how warned.

    [cull]                  # every kind
    idle = "2h"             # no Jupyter/SSH activity for this long ...
    gpu_below = 5           # ... and each of its GPUs under 5 % utilisation ...
    gpu_window = "30m"      # ... over this window
    warn = "15m"            # warned this long before it is stopped
    keep_max = "8h"         # `ptdesk keep NAME [FOR]` extends up to this
    [cull.jupyter]          # a kind's own values win over the table's
    idle = "1h"

Only the shape is checked here (durations are read by the core, as gpu_hold_after_stop is).
"""

from __future__ import annotations

import re

from ptdesk.errors import ConfigError

KEYS = ("idle", "gpu_below", "gpu_window", "warn", "keep_max")
ALL_KINDS = "*"
_DURATION = re.compile(r"\d+(\.\d+)?\s*[smhdw]")


def parse_cull(value: object, origin: str) -> dict[str, dict[str, str]]:
    """{"*": {...}, "jupyter": {...}}: the table's values, and each kind's own."""
    if not isinstance(value, dict):
        raise ConfigError(f"'cull' in {origin} must be a table.", "Write it as [cull] with idle, warn, ...")
    out: dict[str, dict[str, str]] = {ALL_KINDS: {}}
    for key, item in value.items():
        if isinstance(item, dict):
            out[key] = {k: _value(f"cull.{key}.{k}", k, v, origin) for k, v in item.items()}
        else:
            out[ALL_KINDS][key] = _value(f"cull.{key}", key, item, origin)
    return out


def _value(where: str, key: str, value: object, origin: str) -> str:
    if key not in KEYS:
        raise ConfigError(f"Unknown setting {where!r} in {origin}.", f"[cull] knows: {', '.join(KEYS)}.")
    if key == "gpu_below":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ConfigError(f"{where} in {origin} must be a percentage from 0 to 100.", "For example: gpu_below = 5")
        return str(value)
    if not isinstance(value, str) or not _DURATION.fullmatch(value.strip().lower()):
        raise ConfigError(f"{where} in {origin} must be a duration like \"30m\" or \"2h\".",
                          "A number and a unit s, m, h, d or w.")
    return value
