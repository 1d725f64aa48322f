"""What each experiment really runs, and where it drifted from its image and from its teammates.

- At launch the store keeps the image *id* an experiment was created from (a tag moves with every
  rebuild) and that image's environment fingerprint (`at_launch`).
- `environment(site, name)` reads the environment recorded in its image (the probe's file, read from
  the container itself, so it stays right after a rebuild moved the tag) and, while it runs, the
  live one: the same probe run in the container as the container user. The difference is what was
  installed, removed or changed since launch, each with the person who did it when the owner of
  the package's dist-info folder says so (a user-site install in someone's home is theirs). The
  result of that check is kept in the store, so a listing can mark "changed" without an exec.
- `marked(...)` gives the listing its cheap column: fingerprint, "behind" (the tag it was launched
  from now names another build), "changed" (from the last check). No container is exec'd; each
  distinct image is inspected once per listing.
- `diff(site, a, b)`: two experiments (or one and `image:KIND`, the current build), package by package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ptdesk.core.access.ownership import instance_containers, refuse_if_foreign
from ptdesk.core.base.models import EnvironmentMark, Experiment
from ptdesk.core.engine.client import SAFE_PATH
from ptdesk.core.environment import baseline
from ptdesk.core.environment.recorded import (
    Environment,
    ImageSummary,
    PackageChange,
    image_environment,
    parse_probe,
    probe_source,
    read_recorded,
    summary_of,
)
from ptdesk.core.gpu import driver_compat
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import Conflict, InvalidInput, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

IMAGE_PREFIX = "image:"


@dataclass(frozen=True)
class ExperimentEnvironment:
    """`ptdesk env NAME`: the recorded environment, the live one, and what changed in between."""

    name: str
    image: str  # the tag it was launched from
    image_id: str | None
    current_image_id: str | None  # what that tag names now
    summary: ImageSummary | None  # its image's labels
    recorded: Environment | None  # None: the image recorded no environment
    live: Environment | None  # None: not running (or no probe answer)
    changes: tuple[PackageChange, ...] = ()
    checked: float | None = None
    current_fingerprint: str | None = None  # the environment the tag names now

    @property
    def behind(self) -> bool:
        """A new image with the same environment (fingerprint) is not behind (see `behind` below)."""
        if not (self.current_image_id and self.image_id and self.current_image_id != self.image_id):
            return False
        return not (self.fingerprint and self.current_fingerprint) or self.fingerprint != self.current_fingerprint

    @property
    def fingerprint(self) -> str | None:
        return self.summary.fingerprint if self.summary else self.recorded.fingerprint() if self.recorded else None

    @property
    def live_fingerprint(self) -> str | None:
        if self.live is None:
            return None
        base = self.recorded
        return self.live.fingerprint(base.cuda if base else None, base.cudnn if base else None)

    def to_json(self) -> dict:
        return {"name": self.name, "image": self.image, "image_id": self.image_id,
                "current_image_id": self.current_image_id, "behind": self.behind,
                "fingerprint": self.fingerprint, "live_fingerprint": self.live_fingerprint,
                "image_environment": self.summary.to_json() if self.summary else None,
                "recorded": self.recorded.to_json() if self.recorded else None,
                "live": self.live.to_json() if self.live else None,
                "changes": [c.to_json() for c in self.changes], "checked": self.checked}


@dataclass(frozen=True)
class EnvironmentDiff:
    a: str
    b: str
    a_fingerprint: str | None
    b_fingerprint: str | None
    fields: tuple[tuple[str, str | None, str | None], ...]  # (os|python|cuda|cudnn, in A, in B) that differ
    packages: tuple[PackageChange, ...]  # before = A's version, after = B's

    @property
    def same(self) -> bool:
        return not self.fields and not self.packages

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "a_fingerprint": self.a_fingerprint, "b_fingerprint": self.b_fingerprint,
                "same": self.same, "fields": [{"field": f, "a": x, "b": y} for f, x, y in self.fields],
                "packages": [{"name": c.name, "a": c.before, "b": c.after, "change": side_change(c)}
                             for c in self.packages]}


def side_change(change: PackageChange) -> str:
    """A diff's words: which side has the package, or that both have it at other versions."""
    return {"installed": "only in B", "removed": "only in A"}.get(change.change, "differs")


# --- at launch ---------------------------------------------------------------------------------
def at_launch(site: Site, container_id: str, checked: dict | None = None) -> dict[str, str | None]:
    """Store columns for a new experiment: the image id its container really uses, and its fingerprint.
    `checked`: the image's inspect the launch read before creating it, used when the container runs
    that very image (a tag rebuilt in between is read again)."""
    image_id = site.engine.inspect(container_id).get("Image")
    info = checked if checked and checked.get("Id") == image_id else None
    summary = summary_of(info or site.engine.image_info(image_id)) if image_id else None
    return {"image_id": image_id, "env_fingerprint": summary.fingerprint if summary else None}


# --- one experiment ----------------------------------------------------------------------------
def environment(site: Site, name: str) -> ExperimentEnvironment:
    record = site.store.experiment(name)
    container = instance_containers(site).get(name)
    if record is None and container is not None:
        # Nothing is run in a container this home did not make (a colleague's, or unverified).
        refuse_if_foreign(site, name)
        raise Conflict(f"{name!r} was not made by this ptdesk home, so ptdesk runs nothing in it.",
                       "ptdesk ls marks it unverified; its owner's ptdesk can show its environment.")
    if container is None:
        if record is None:
            raise NotFound(f"No experiment named {name!r}.", "List them with: ptdesk ls --all")
        raise NotFound(f"{name!r} has no container (it is {record.status}).",
                       "Wait for its launch to finish, or remove it: ptdesk rm NAME")
    engine = site.engine
    details = engine.inspect(container["Id"])
    image_id = details.get("Image") or (record.image_id if record else None)
    tag = record.image if record else str(container.get("Image") or "")
    current = engine.image_info(tag) if tag else None
    recorded = read_recorded(engine, container["Id"])
    live = probe_live(site, container["Id"], details) if details["State"].get("Running") else None
    owner = record.owner if record else ((details.get("Config") or {}).get("Labels") or {}).get("ptdesk.owner")
    changes = changes_since(site, recorded, live, owner) if recorded and live else ()
    checked = time.time() if live else None
    now = summary_of(current)
    result = ExperimentEnvironment(name, tag, image_id, current["Id"] if current else None,
                                   summary_of(engine.image_info(image_id)) if image_id else None,
                                   recorded, live, changes, checked, now.fingerprint if now else None)
    if record is not None and live is not None:
        _remember_check(site, record, result)
    return result


def probe_live(site: Site, container_id: str, details: Mapping) -> Environment:
    """Run the probe (ptdesk's own copy: it works in images that do not carry one) in the container.

    People in the experiment can write its workspace, homes and user sites, so nothing of theirs
    may run: an empty environment (`env -i`), the working directory /, the interpreter taken from
    the image's own PATH only where root alone can change it, `python3 -I`, and versions read from
    metadata files (nothing imported). It runs as the experiment's person (the owner's account)
    only because that account's user site is in its 0700 home, which no other user may read."""
    from ptdesk.core.environment.images import images_root  # the image builder's module: not a launch's

    script = probe_source(images_root()).decode()
    image_path = _env(details).get("PATH") or SAFE_PATH
    _, output = site.engine.exec(container_id, ["/usr/bin/env", "-i", "/bin/sh", "-c", script, "env-probe",
                                              "--live", image_path], user=_container_user(site, details))
    return parse_probe(output, container_id[:12])


def _env(details: Mapping) -> dict[str, str]:
    return dict(item.split("=", 1) for item in (details.get("Config") or {}).get("Env") or [] if "=" in item)


def _container_user(site: Site, details: Mapping) -> str:
    """Who the experiment's person is inside: the container's user, else the uid sshd gives the owner."""
    config = details.get("Config") or {}
    user = config.get("User") or ""
    if user and not user.startswith("0") and user != "root":
        return user
    env = _env(details)
    if env.get("PTDESK_UID", "").isdigit():
        return f"{env['PTDESK_UID']}:{env.get('PTDESK_GID', env['PTDESK_UID'])}"
    return f"{site.config.uid}:{site.config.gid}"


def changes_since(site: Site, recorded: Environment, live: Environment,
                  owner: str | None) -> tuple[PackageChange, ...]:
    collaborators = {c.name for c in site.store.collaborators()}
    before = recorded.versions
    now = {p.name: p for p in live.packages}
    out = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if new is not None and old == new.version:
            continue
        who = _who(site, new, owner, collaborators) if new is not None else None
        out.append(PackageChange(name, old, new.version if new else None, who))
    return tuple(out)


def _who(site: Site, package: object, owner: str | None, collaborators: set[str]) -> str | None:
    uid, account, location = (getattr(package, "uid", None), getattr(package, "user", None),
                              getattr(package, "location", None) or "")
    if uid is None:
        return None
    if uid == 0:
        return "root"
    if uid == site.config.uid and owner:
        return owner
    if account in collaborators:
        return account
    if location.startswith("/home/"):
        return location.split("/")[2]
    return account


def _remember_check(site: Site, record: ExperimentRecord, result: ExperimentEnvironment) -> None:
    check = {"checked": result.checked, "fingerprint": result.live_fingerprint, "changes": len(result.changes),
             "image_id": result.image_id}
    columns: dict[str, object] = {"env_check": json.dumps(check)}
    if record.image_id is None and result.image_id:  # adopted, or launched by an older ptdesk
        columns["image_id"] = result.image_id
    if record.env_fingerprint is None and result.fingerprint:
        columns["env_fingerprint"] = result.fingerprint
    site.store.update_experiment(record.name, **columns)


def check_all(site: Site, experiments: Iterable[Experiment]) -> list[ExperimentEnvironment]:
    """Live-check every running, managed experiment (what refreshes the listing's "changed" mark)."""
    return [environment(site, e.name) for e in experiments
            if e.status == "running" and not (e.orphan or e.foreign or e.unverified)]


# --- at launch: what the person should know ---------------------------------------------------
def launch_warnings(site: Site, kind: str, image: str, gpus: tuple[int, ...], driver: str | None,
                    info: dict | None = None) -> list[str]:
    """The driver sentence (when GPUs were given and NVML answered for the launch: `driver`) and the
    baseline sentence (when a team baseline is pinned and this image differs from it). `info`: the
    image's inspect when the launch has it already (else it is read)."""
    summary = summary_of(info or site.engine.image_info(image))
    if summary is None:
        return []
    warnings = []
    if gpus:
        warning = driver_compat.driver_warning(driver, summary.cuda, image)
        if warning:
            warnings.append(warning)
    warning = baseline.launch_warning(site.config, kind, image, summary)
    if warning:
        warnings.append(warning)
    return warnings


# --- the listing's column ----------------------------------------------------------------------
def marked(site: Site, experiments: list[Experiment], containers: Mapping[str, dict],
           records: Mapping[str, ExperimentRecord], driver: str | None = None) -> list[Experiment]:
    """Each experiment with its EnvironmentMark: store columns, the list's ImageID, one inspect per
    distinct image; no exec. A driver warning only where NVML already answered in this process
    (`driver`: what it said)."""
    inspected: dict[str, dict | None] = {}

    def info(ref: str | None) -> dict | None:
        if not ref:
            return None
        if ref not in inspected:
            try:
                inspected[ref] = site.engine.image_info(ref)
            except PtdeskError:
                inspected[ref] = None
            if inspected[ref]:  # a tag and the id it names are one inspect
                inspected.setdefault(inspected[ref]["Id"], inspected[ref])
        return inspected[ref]

    out = []
    for e in experiments:
        record, container = records.get(e.name), containers.get(e.name) or {}
        image_id = container.get("ImageID") or (record.image_id if record else None)
        current = info(record.image if record else container.get("Image"))  # first: usually also image_id's
        summary = summary_of(info(image_id))
        changed, checked = _last_check(record)
        cuda = summary.cuda if summary else None
        fingerprint = (record.env_fingerprint if record else None) or (summary.fingerprint if summary else None)
        mark = EnvironmentMark(
            fingerprint=fingerprint, image_id=image_id, behind=behind(current, image_id, fingerprint),
            changed=changed, checked=checked, cuda=cuda,
            driver_warning=driver_compat.driver_warning(driver, cuda, e.image) if e.gpus else None)
        out.append(replace(e, environment=mark))
    return out


def behind(current: dict | None, image_id: str | None, fingerprint: str | None) -> bool:
    """Whether the tag now names an image with another environment than the one launched. A rebuild
    that made the same environment (same fingerprint) under a new image id is not "behind"; where
    either fingerprint is unknown, the image ids decide."""
    if not current or not image_id or current["Id"] == image_id:
        return False
    now = summary_of(current)
    return not (fingerprint and now and now.fingerprint) or now.fingerprint != fingerprint


def _last_check(record: ExperimentRecord | None) -> tuple[bool | None, float | None]:
    if record is None or not record.env_check:
        return None, None
    try:
        check = json.loads(record.env_check)
        return int(check.get("changes", 0)) > 0, float(check["checked"])
    except (ValueError, KeyError, TypeError):
        return None, None


# --- two sides ---------------------------------------------------------------------------------
def side(site: Site, ref: str) -> tuple[str, Environment, str | None]:
    """(label, environment, fingerprint) of an experiment (live when running) or `image:KIND`."""
    if ref.startswith(IMAGE_PREFIX):
        kind = ref[len(IMAGE_PREFIX):]
        if kind not in REGISTRY:
            raise InvalidInput(f"Unknown image kind {kind!r} in {ref!r}.",
                               f"Use one of: {', '.join(IMAGE_PREFIX + k for k in REGISTRY)}.")
        tag = get_kind(kind).image(site.config)
        info = site.engine.image_info(tag)
        if info is None:
            raise NotFound(f"The {kind} image {tag} is not on this engine.",
                           f"Build it with: ptdesk images build {kind}")
        env = image_environment(site.engine, info["Id"])
        if env is None:
            raise NotFound(f"{tag} carries no recorded environment (built before ptdesk recorded them).",
                           f"Rebuild it with: ptdesk images build {kind}")
        summary = summary_of(info)
        return f"{tag} ({info['Id'][7:19]})", env, summary.fingerprint if summary else env.fingerprint()
    found = environment(site, ref)
    env = found.live or found.recorded
    if env is None:
        raise NotFound(f"{ref!r} has no recorded environment and is not running.",
                       f"Start it (ptdesk start {ref}) to read its packages live.")
    return (f"{ref} (live)" if found.live else ref), env, found.live_fingerprint or found.fingerprint


def diff(site: Site, a: str, b: str,
         known: Mapping[str, tuple[str, Environment, str | None]] | None = None) -> EnvironmentDiff:
    """`known`: sides read elsewhere (an ended job's kept environment: ptdesk.core.jobs), by name."""
    a_label, a_env, a_fp = (known or {}).get(a) or side(site, a)
    b_label, b_env, b_fp = (known or {}).get(b) or side(site, b)
    fields = tuple((f, getattr(a_env, f), getattr(b_env, f)) for f in ("os", "python", "cuda", "cudnn")
                   if getattr(a_env, f) != getattr(b_env, f) and getattr(a_env, f) and getattr(b_env, f))
    a_versions, b_versions = a_env.versions, b_env.versions
    packages = tuple(PackageChange(n, a_versions.get(n), b_versions.get(n))
                     for n in sorted(set(a_versions) | set(b_versions)) if a_versions.get(n) != b_versions.get(n))
    return EnvironmentDiff(a_label, b_label, a_fp, b_fp, fields, packages)
