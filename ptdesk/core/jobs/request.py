"""What a person typed for `ptdesk run`, checked before anything is made: the command, its sweep,
the time limit, the data folders. Pure: one InvalidInput sentence for each mistake."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

from ptdesk.core.base.durations import parse_duration
from ptdesk.errors import InvalidInput

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
DATA_MOUNT = "/data"


@dataclass(frozen=True)
class JobRequest:
    """`ptdesk run`'s options, as typed (also what `rerun` submits again)."""

    command: tuple[str, ...]
    name: str | None = None
    gpus: str | None = None
    gpu_memory: str | None = None
    on: str | None = None
    memory: str | None = None
    cpus: float | None = None
    workspace: str | None = None
    time_limit: str | None = None
    grace: float = 10.0
    queue: bool = False
    like: str | None = None
    data: tuple[str, ...] = ()
    sweep: tuple[str, ...] = ()
    code: str | None = None
    snapshot_limit: str = "200M"
    image: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def check_command(command: tuple[str, ...]) -> tuple[str, ...]:
    if not command or not "".join(command).strip():
        raise InvalidInput("There is no command to run.", "Put it after --, e.g.: ptdesk run -- python train.py")
    return command


def time_limit(text: str | None) -> int | None:
    """Whole seconds (the container's `timeout` counts in them), or None for no limit."""
    if text is None:
        return None
    return math.ceil(parse_duration(text))


def snapshot_limit(text: str) -> int:
    """Bytes of --snapshot-limit (200M, 1.5G, 4096), counted in 1024s as Docker's sizes are."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"--snapshot-limit {text!r} is not a size.", "Use a number and a unit, like 200M or 1G.")
    return int(float(match.group(1)) * 1024 ** "_kmgt".index(match.group(2).lower() or "_"))


def sweep_combinations(command: tuple[str, ...],
                       sweeps: tuple[str, ...]) -> list[tuple[dict[str, str], tuple[str, ...]]]:
    """One (values, command) per combination of the --sweep values, placeholders filled in; the
    command itself once when there is no sweep."""
    if not sweeps:
        return [({}, command)]
    axes: dict[str, list[str]] = {}
    for text in sweeps:
        key, sep, values = text.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not PLACEHOLDER.fullmatch("{" + key.strip() + "}") or not items:
            raise InvalidInput(f"--sweep {text!r} is not NAME=VALUE,VALUE.", "Use e.g. --sweep lr=1e-3,3e-4")
        if key.strip() in axes:  # the later one would silently replace the earlier's values
            raise InvalidInput(f"--sweep {key.strip()} is given twice.",
                               f"Give its values once: --sweep {key.strip()}={','.join(axes[key.strip()] + items)}")
        axes[key.strip()] = items
    used = {m.group(1) for arg in command for m in PLACEHOLDER.finditer(arg)}
    if missing := sorted(used - set(axes)):
        raise InvalidInput(f"The placeholder {{{missing[0]}}} in the command has no values.",
                           f"Add --sweep {missing[0]}=VALUE,VALUE (or remove {{{missing[0]}}}).")
    if unused := sorted(set(axes) - used):
        raise InvalidInput(f"--sweep {unused[0]} is not used in the command.",
                           f"Put {{{unused[0]}}} where its value goes, e.g. --{unused[0]} {{{unused[0]}}}.")
    out = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo, strict=True))
        out.append((values, tuple(PLACEHOLDER.sub(lambda m, v=values: v[m.group(1)], arg) for arg in command)))
    return out


def data_mounts(data: tuple[str, ...]) -> list[tuple[str, str]]:
    """(folder, "ro" | "rw") per --data PATH[:ro|rw]; read-only unless said."""
    out = []
    for text in data:
        path, _, mode = text.rpartition(":") if text.endswith((":ro", ":rw")) else (text, "", "ro")
        if not path:
            raise InvalidInput(f"--data {text!r} names no folder.", "Use --data PATH, PATH:ro or PATH:rw.")
        out.append((path, mode))
    return out
