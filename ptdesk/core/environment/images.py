"""Building ptdesk's container images (images/<kind>/, one per registered kind) through the engine.

The build context is an in-memory tar of the image folder plus `build-ca.pem`: an extra CA bundle
for HTTPS during the build (TLS-intercepting proxies), or an empty file when none is needed.
Every image is labelled with two hashes:
- `ptdesk.source-hash`: the image folder as shipped with this ptdesk (doctor: "image out of date");
- `ptdesk.context-hash`: everything that went into the build (folder, CA bundle, build args, base
  image id), so `images build` can skip a build whose inputs did not change.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import ptdesk
from ptdesk.config import Config
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment import baseline, code_image, recorded
from ptdesk.core.environment.recorded import ImageSummary, PackageChange
from ptdesk.core.gpu.sampler_image import SAMPLER_TARGET, program_files, sampler_tag
from ptdesk.core.kinds import get_kind, kind_names
from ptdesk.errors import InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

CA_NAME = "build-ca.pem"
LABEL_IMAGE = "ptdesk.image"
LABEL_SOURCE_HASH = "ptdesk.source-hash"
LABEL_CONTEXT_HASH = "ptdesk.context-hash"
LABEL_BASE = "ptdesk.base"
# pip reads these env variables / requests honours them: each can name the proxy's CA bundle.
_CA_ENV_AFTER_PIP_CONF = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class CaBundle:
    """The extra CA bundle a build gets, and where ptdesk found it (for messages)."""

    path: Path | None
    source: str  # "--ca-bundle", "config ca_bundle", "PIP_CERT", "/etc/pip.conf", ... or "none"
    data: bytes = b""


@dataclass(frozen=True)
class BuildResult:
    target: str
    tag: str
    image_id: str
    seconds: float
    cached: bool  # True: an image built from the same inputs was already there, nothing was built
    base: str
    context_hash: str
    ca_source: str
    environment: ImageSummary | None = None
    # Filled in by `build` when a team baseline is pinned (ptdesk.core.environment.baseline): what differs from it.
    baseline_diff: tuple[PackageChange, ...] = ()

    def to_json(self) -> dict:
        return {"target": self.target, "tag": self.tag, "image_id": self.image_id,
                "seconds": round(self.seconds, 2), "cached": self.cached, "base": self.base,
                "context_hash": self.context_hash, "ca_source": self.ca_source,
                "environment": self.environment.to_json() if self.environment else None,
                "baseline_diff": [d.to_json() for d in self.baseline_diff]}


@dataclass(frozen=True)
class ImageStatus:
    target: str
    tag: str
    present: bool
    image_id: str | None = None
    created: str | None = None  # ISO 8601 as the engine reports it
    size: int | None = None  # bytes
    base: str | None = None
    # True/False: built by `ptdesk images build` from these/other sources; None: cannot tell
    # (missing, or built by hand without ptdesk's labels).
    up_to_date: bool | None = None
    environment: ImageSummary | None = None  # what its build recorded (None: not built by this ptdesk)

    def to_json(self) -> dict:
        return {"target": self.target, "tag": self.tag, "present": self.present, "image_id": self.image_id,
                "created": self.created, "size": self.size, "base": self.base, "up_to_date": self.up_to_date,
                "environment": self.environment.to_json() if self.environment else None}


# --- where the Dockerfiles are -----------------------------------------------------------------
def images_root() -> Path:
    """The folder holding <target>/Dockerfile: inside the installed package (wheel), else the checkout.

    A wheel carries images/ as the package data folder `ptdesk/_images` (see setup.py); a source or
    editable checkout has it next to the package.
    """
    package = Path(ptdesk.__file__).resolve().parent
    for candidate in (package / "_images", package.parent / "images"):
        if (candidate / "ssh" / "Dockerfile").is_file():
            return candidate
    raise PtdeskError(f"ptdesk's image sources (Dockerfiles) are not installed next to {package}.",
                      "Reinstall ptdesk (pip install .) from a complete source checkout.")


def expand_targets(name: str) -> tuple[str, ...]:
    """A kind's name or 'all' -> the targets to build (one per kind), or InvalidInput naming the choices."""
    if name == "all":
        return kind_names()
    if name in kind_names() or name == SAMPLER_TARGET:  # a kind with an image of its own (not job's)
        return (name,)
    raise InvalidInput(f"Unknown image {name!r}.", f"Choose one of: {', '.join(kind_names())}, {SAMPLER_TARGET}, all.")


def image_tag(config: Config, target: str) -> str:
    """The tag a kind's image (or the GPU sampler's) is built as and run from (its `<kind>_image`
    setting, `sampler_image` for the sampler)."""
    if target == SAMPLER_TARGET:
        return sampler_tag(config)
    return get_kind(target).image(config)


def source_files(target: str, root: Path | None = None) -> dict[str, bytes]:
    """The files of images/<target>, keyed by their path inside the context (sorted, '/'-separated)."""
    folder = (root or images_root()) / target
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    # Every image records its environment with the one shared probe (ptdesk.core.environment.recorded).
    files[recorded.PROBE_NAME] = recorded.probe_source(folder.parent)
    if "Dockerfile" not in files:
        raise PtdeskError(f"{folder} has no Dockerfile.", "Reinstall ptdesk from a complete source checkout.")
    if target == SAMPLER_TARGET:
        files.update(program_files())
    return files


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    sha = hashlib.sha256()
    for name, data in parts:
        # Length-prefixed so that moving bytes between a name and its content changes the hash.
        sha.update(f"{len(name)}:{name}:{len(data)}:".encode())
        sha.update(data)
    return sha.hexdigest()


def source_hash(target: str, root: Path | None = None) -> str:
    return _digest(source_files(target, root).items())


# --- CA bundle ---------------------------------------------------------------------------------
def pip_config_files(env: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, highest precedence first (pip reads them the other way round)."""
    if "PIP_CONFIG_FILE" in env and env["PIP_CONFIG_FILE"] == os.devnull:
        return []  # pip's own convention: PIP_CONFIG_FILE=/dev/null disables every config file
    home = Path(env.get("HOME") or Path.home())
    xdg_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files: list[Path] = []
    if env.get("PIP_CONFIG_FILE"):
        files.append(Path(env["PIP_CONFIG_FILE"]))
    files.append(Path(env.get("VIRTUAL_ENV") or sys.prefix) / "pip.conf")
    files += [xdg_home / "pip" / "pip.conf", home / ".pip" / "pip.conf"]
    for folder in reversed((env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)):
        if folder:
            files.append(Path(folder) / "pip" / "pip.conf")
    files.append(Path("/etc/pip.conf"))
    return files


def _pip_conf_cert(path: Path) -> str | None:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except (OSError, configparser.Error):
        return None  # pip would complain about it itself; it is not ours to diagnose
    for section in ("install", "global"):  # [install] overrides [global] for `pip install`
        if parser.has_option(section, "cert"):
            value = parser.get(section, "cert").strip()
            if value:
                return value
    return None


def resolve_ca_bundle(explicit: Path | None, config: Config | None = None,
                      env: Mapping[str, str] | None = None,
                      pip_conf: Sequence[Path] | None = None) -> CaBundle:
    """The CA bundle to hand to the build, first found of: --ca-bundle, config `ca_bundle`, PIP_CERT,
    `cert =` in pip.conf files, REQUESTS_CA_BUNDLE, SSL_CERT_FILE. None found: an empty bundle.

    A named file that is missing or not PEM is an error (not silently skipped): building without the
    proxy's CA fails much later with an obscure TLS error inside the build.
    """
    env = os.environ if env is None else env
    candidates: list[tuple[str, str | Path | None]] = [
        ("--ca-bundle", explicit),
        ("config ca_bundle", config.ca_bundle if config else None),
        ("PIP_CERT", env.get("PIP_CERT")),
    ]
    candidates += [(str(f), _pip_conf_cert(f)) for f in
                   (pip_config_files(env) if pip_conf is None else pip_conf) if f.is_file()]
    candidates += [(name, env.get(name)) for name in _CA_ENV_AFTER_PIP_CONF]
    for source, value in candidates:
        if value:
            return _load_ca(Path(str(value)).expanduser(), source)
    return CaBundle(path=None, source="none")


def _load_ca(path: Path, source: str) -> CaBundle:
    hint = ("Pass --ca-bundle with an existing PEM file" if source == "--ca-bundle"
            else f"Fix or remove the CA bundle named by {source}, or pass --ca-bundle FILE")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PtdeskError(f"The CA bundle {path} (from {source}) does not exist.", hint + ".") from None
    except OSError as exc:
        raise PtdeskError(f"The CA bundle {path} (from {source}) cannot be read: {exc.strerror}.",
                          hint + ".") from None
    certificates = certificates_only(data)
    if not certificates:
        raise PtdeskError(f"The CA bundle {path} (from {source}) holds no PEM certificate.",
                          hint + " (a PEM file starts with -----BEGIN CERTIFICATE-----).")
    return CaBundle(path=path, source=source, data=certificates)


# One PEM certificate block: base64 lines between the markers, nothing else.
_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----")


def certificates_only(data: bytes) -> bytes:
    """The CERTIFICATE blocks of a PEM bundle, one after another, and nothing else.

    The bundle ends up in the image, readable by everyone who runs it: a careless bundle (a
    proxy's key and certificate in one file) must not carry a PRIVATE KEY block, or any other
    text, in with it.
    """
    blocks = _CERTIFICATE.findall(data)
    return b"".join(block.replace(b"\r\n", b"\n") + b"\n" for block in blocks)


# --- building ----------------------------------------------------------------------------------
def build_context(files: Mapping[str, bytes], ca: CaBundle) -> bytes:
    """A reproducible tar (fixed mtime/owner) so equal inputs give equal contexts."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted({**files, CA_NAME: ca.data}.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.gid = len(data), 0, 0, 0
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def context_hash(files: Mapping[str, bytes], ca: CaBundle, buildargs: Mapping[str, str], base_id: str) -> str:
    parts = list(files.items())
    # Docker only sees the CA if the Dockerfile copies it: a new CA must not rebuild the ssh image.
    if CA_NAME.encode() in files["Dockerfile"]:
        parts.append((CA_NAME, ca.data))
    parts.append(("buildargs", json.dumps(dict(sorted(buildargs.items()))).encode()))
    parts.append(("base-id", base_id.encode()))
    return _digest(parts)


def build_image(engine: Engine, target: str, tag: str, base: str, ca: CaBundle,
                on_line: Callable[[str], None] = lambda _line: None, force: bool = False,
                extra_args: Mapping[str, str] | None = None,
                extra_files: Mapping[str, bytes] | None = None) -> BuildResult:
    """Build images/<target> (plus extra_files in its context) as `tag` FROM `base`; reuse the
    existing image when no input changed."""
    started = time.monotonic()
    files = {**source_files(target), **(extra_files or {})}
    buildargs = {"BASE": base, **(extra_args or {})}
    base_info = engine.image_info(base)
    # A base that is not present yet is pulled by the build; its id joins the hash on the next run.
    digest = context_hash(files, ca, buildargs, base_info["Id"] if base_info else "")
    existing = engine.image_info(tag)
    if not force and existing and _labels(existing).get(LABEL_CONTEXT_HASH) == digest:
        on_line(f"{tag} is up to date (same Dockerfiles, base and CA bundle); not rebuilt.")
        return BuildResult(target, tag, existing["Id"], time.monotonic() - started, True, base, digest,
                           ca.source, environment=recorded.summary_of(existing))
    labels = {LABEL_IMAGE: target, LABEL_SOURCE_HASH: _digest(files.items()),
              LABEL_CONTEXT_HASH: digest, LABEL_BASE: base}
    if base_info is None:
        on_line(f"The base image {base} is not on this engine yet: the build pulls it first (a few GB for "
                "CUDA images).")
    said: list[str] = []  # "ptdesk: ..." lines: a build step's own one-sentence reason for failing

    def watch(line: str) -> None:
        text = _ANSI.sub("", line).strip()  # the engine colours a step's stderr
        if text.startswith("ptdesk: "):
            said.append(text.removeprefix("ptdesk: "))
        on_line(line)
    try:
        engine.build(build_context(files, ca), tag, buildargs, watch, labels=labels)
    except PtdeskError as exc:
        if said:
            raise PtdeskError(f"Building {tag} failed: {said[-1]}",
                              f"Nothing was tagged: {tag} is what it was before the build.") from None
        if base_info is None and engine.image_info(base) is None:
            # The usual cause on an offline or registry-less machine: say so, not "read the output".
            raise PtdeskError(f"Building {tag} failed: the base image {base} could not be pulled "
                              f"({exc.message.removeprefix(f'Building {tag} failed: ')}).",
                              "Use a base image this engine already has (--base IMAGE, see `docker images`), "
                              f"or `docker load` {base} from a machine that can reach the registry.") from None
        raise
    image_id, _ = recorded.record_build(engine, tag, base_info or engine.image_info(base), on_line)
    return BuildResult(target, tag, image_id, time.monotonic() - started, False, base, digest, ca.source,
                       environment=recorded.summary_of(engine.image_info(tag)))


def image_status(engine: Engine, target: str, tag: str) -> ImageStatus:
    info = engine.image_info(tag)
    if info is None:
        return ImageStatus(target, tag, present=False)
    labels = _labels(info)
    built_from = labels.get(LABEL_SOURCE_HASH)
    return ImageStatus(target, tag, present=True, image_id=info.get("Id"), created=info.get("Created"),
                       size=info.get("Size"), base=labels.get(LABEL_BASE),
                       up_to_date=None if built_from is None else built_from == source_hash(target),
                       environment=recorded.summary_of(info))


def statuses(site: Site, targets: Iterable[str] | None = None) -> list[ImageStatus]:
    """Present or missing, and up to date, for each target's configured tag."""
    # A remote workstation also needs the GPU sampler (the local one reads NVML itself).
    default = (*kind_names(), SAMPLER_TARGET) if site.is_remote else kind_names()
    return [image_status(site.engine, t, image_tag(site.config, t)) for t in (targets or default)]


def build(site: Site, targets: Iterable[str], base: str | None = None, ca_bundle: Path | None = None,
          force: bool = False, on_line: Callable[[str], None] | None = None,
          on_start: Callable[[str, str], None] | None = None) -> list[BuildResult]:
    """Build each target FROM `base` (default: the config's); `on_start(tag, base)` before each one."""
    targets = tuple(targets)
    for target in targets:
        expand_targets(target)  # validate everything before touching the engine
    ca = resolve_ca_bundle(ca_bundle, site.config)
    # A bad extension file stops the build before it starts (and before the engine is asked anything).
    extensions = code_image.extension_files(site.config) if code_image.TARGET in targets else {}
    base = base or site.config.base_image
    engine = site.engine
    if ca.path and on_line:
        on_line(f"Using CA bundle {ca.path} (from {ca.source}).")
    pins = baseline.read(site.config)  # a damaged pin file stops the build before it starts
    results = []
    for target in targets:
        tag = image_tag(site.config, target)
        target_base, extra = (_code_base(site), extensions) if target == code_image.TARGET else (base, None)
        if on_start:
            on_start(tag, target_base)
        result = build_image(engine, target, tag, target_base, ca, on_line=on_line or (lambda _line: None),
                             force=force, extra_args=build_args(site.config, target), extra_files=extra)
        results.append(against_baseline(engine, result, pins.get(target)))
    return results


def _code_base(site: Site) -> str:
    """The code image's base: the Jupyter image, which must be there (`all` builds it just before)."""
    jupyter = code_image.base_of(site.config)
    if site.engine.image_info(jupyter) is None:
        raise PtdeskError(f"The code image is built FROM the Jupyter image {jupyter}, which is not on this engine.",
                          "Build it first: ptdesk images build jupyter (or build all).")
    return jupyter


def build_args(config: Config, target: str) -> dict[str, str]:
    """Build arguments from config.toml: the SSH image's extra packages (`ssh_packages`). None
    when unset, so the context hash (and with it every existing image) stays what it was."""
    if target == "ssh" and config.ssh_packages:
        return {"PTDESK_EXTRA_PACKAGES": " ".join(config.ssh_packages)}
    return {}


def against_baseline(engine: Engine, result: BuildResult, pinned: baseline.Pinned | None) -> BuildResult:
    """The build with what differs from the team's pin (ptdesk.core.environment.baseline), if one is pinned."""
    if pinned is None:
        return result
    env = recorded.image_environment(engine, result.image_id)
    changes = baseline.compare(pinned, env) if env else (PackageChange("[environment]", pinned.fingerprint, None),)
    return replace(result, baseline_diff=changes)


def _labels(info: Mapping) -> dict[str, str]:
    return (info.get("Config") or {}).get("Labels") or {}
