"""The team's pinned environment: `ptdesk images pin` records the current builds, and every later
build (here or on another workstation reading the same pin) is compared with it.

The pin is its own JSON file, never a rewrite of a person's config.toml: by default
PTDESK_HOME/baseline.json, or the file `baseline = "/path"` in config.toml names (a team repository,
a shared folder), so every workstation of the team checks against one pin. It holds, per kind,
the image id, fingerprint, base and the full package list.

A build whose packages differ from the pin is built and kept (it may be exactly the update the team
wants), but `images build` exits non-zero with the differences listed, and `new` warns for as long
as the image differs: a different environment is never produced silently. Accepting it is one
explicit step: `ptdesk images pin`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.base import private_files
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.recorded import Environment, ImageSummary, PackageChange, image_environment, summary_of
from ptdesk.core.kinds import get_kind
from ptdesk.errors import ConfigError, NotFound, PtdeskError

FORMAT = "ptdesk-baseline/1"
FIELDS = ("python", "cuda", "cudnn")


@dataclass(frozen=True)
class Pinned:
    """One kind's entry in the pin file."""

    kind: str
    tag: str
    image_id: str
    fingerprint: str
    base: str | None
    python: str | None
    cuda: str | None
    cudnn: str | None
    packages: dict[str, str]
    pinned: float
    pinned_by: str

    def to_json(self) -> dict:
        return {"tag": self.tag, "image_id": self.image_id, "fingerprint": self.fingerprint, "base": self.base,
                "python": self.python, "cuda": self.cuda, "cudnn": self.cudnn, "packages": self.packages,
                "pinned": self.pinned, "pinned_by": self.pinned_by}

    @classmethod
    def from_json(cls, kind: str, data: Mapping) -> Pinned:
        return cls(kind, str(data["tag"]), str(data["image_id"]), str(data["fingerprint"]), data.get("base"),
                   data.get("python"), data.get("cuda"), data.get("cudnn"),
                   {str(k): str(v) for k, v in (data.get("packages") or {}).items()},
                   float(data.get("pinned") or 0), str(data.get("pinned_by") or "?"))

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(self.pinned))


def read(config: Config) -> dict[str, Pinned]:
    """Kind -> pinned entry; {} when nothing is pinned. A damaged file is an error, never ignored."""
    path = config.baseline_path
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if config.baseline is not None:
            raise ConfigError(f"The baseline file {path} named in config.toml does not exist.",
                              "Fix `baseline` in config.toml, or make it with: ptdesk images pin") from None
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The baseline file {path} cannot be read ({exc}).",
                          "Restore it from the team's copy, or pin again: ptdesk images pin") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a ptdesk baseline ({FORMAT}).",
                          "Restore it from the team's copy, or pin again: ptdesk images pin")
    try:
        return {kind: Pinned.from_json(kind, entry) for kind, entry in (data.get("images") or {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path} has a damaged entry ({exc}).", "Pin again: ptdesk images pin") from None


def pin(config: Config, entries: Iterable[tuple[str, str, ImageSummary, Environment]], who: str) -> list[Pinned]:
    """Record (kind, tag, summary, environment) entries, keeping other kinds already pinned."""
    current = read(config)
    now = time.time()
    pinned = []
    for kind, tag, summary, env in entries:
        entry = Pinned(kind, tag, summary.image_id, summary.fingerprint, summary.base, env.python, env.cuda,
                       env.cudnn, env.versions, now, who)
        current[kind] = entry
        pinned.append(entry)
    document = {"format": FORMAT, "images": {k: v.to_json() for k, v in sorted(current.items())}}
    _write_atomically(config.baseline_path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return pinned


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0644: a team file, readable by teammates, nothing secret in it.
        private_files.write_atomically(path, text.encode(), 0o644)
    except OSError as exc:
        raise PtdeskError(f"The baseline {path} cannot be written ({exc.strerror or exc}).",
                          "Check the folder's permissions, or point `baseline` in config.toml at a writable "
                          "file.") from None


def compare(pinned: Pinned, env: Environment) -> tuple[PackageChange, ...]:
    """What a build has that the pin does not: [python]/[cuda]/[cudnn] first, then each package
    (before = pinned version, after = built one)."""
    fields = tuple(PackageChange(f"[{f}]", getattr(pinned, f) or "none", getattr(env, f) or "none")
                   for f in FIELDS if (getattr(pinned, f) or "none") != (getattr(env, f) or "none"))
    built = env.versions
    packages = tuple(PackageChange(n, pinned.packages.get(n), built.get(n))
                     for n in sorted(set(pinned.packages) | set(built)) if pinned.packages.get(n) != built.get(n))
    return fields + packages


def drift_error(drifted: Mapping[str, tuple[PackageChange, ...]], config: Config) -> PtdeskError | None:
    """The build's exit: one sentence naming what differs from the pin (the list is printed above)."""
    if not drifted:
        return None
    parts = [f"{kind} in {len(changes)} package(s)" for kind, changes in drifted.items()]
    return PtdeskError(f"The build differs from the team baseline in {config.baseline_path}: {', '.join(parts)}.",
                       "Accept it as the new baseline with `ptdesk images pin`, or use the pinned images "
                       "(`ptdesk images load FILE` of the team's `images save`).")


def launch_warning(config: Config, kind: str, image: str, summary: ImageSummary) -> str | None:
    """One sentence when ptdesk's own image for `kind` is not the pinned environment."""
    if image != _configured(config, kind):
        return None  # a person's own --image is deliberately something else
    try:
        pinned = read(config).get(kind)
    except ConfigError as exc:
        return exc.message
    if pinned is None or pinned.fingerprint == summary.fingerprint:
        return None
    return (f"{image} (environment {summary.fingerprint}) is not the team baseline pinned on {pinned.when} "
            f"({pinned.fingerprint}): results may not reproduce on teammates' machines; load the pinned images "
            f"(ptdesk images load FILE), or make this the baseline with `ptdesk images pin {kind}`.")


def _configured(config: Config, kind: str) -> str | None:
    try:
        return get_kind(kind).image(config)
    except KeyError:
        return None


def pin_current(engine: Engine, config: Config, kinds: Iterable[str], who: str) -> list[Pinned]:
    """Pin the images the config names now (each must carry its recorded environment)."""
    entries = []
    for kind in kinds:
        tag = get_kind(kind).image(config)
        info = engine.image_info(tag)
        summary = summary_of(info)
        if info is None:
            raise NotFound(f"The {kind} image {tag} is not on this engine.",
                           f"Build it first: ptdesk images build {kind}")
        env = image_environment(engine, info["Id"]) if summary else None
        if summary is None or env is None:
            raise PtdeskError(f"{tag} carries no recorded environment (built before ptdesk recorded them).",
                              f"Rebuild it first: ptdesk images build {kind}")
        entries.append((kind, tag, summary, env))
    return pin(config, entries, who)
