"""What an image really is: the environment its build recorded, and the labels that say it briefly.

Every ptdesk image carries the environment probe (images/env-probe, added to each build context)
and ran it once at build time into /etc/ptdesk/environment.json: OS, Python, PyTorch with its CUDA,
cuDNN and NCCL, conda's list when there is conda, and every Python package the experiment's
interpreter sees. That file is the full record; the labels are its summary plus a short
fingerprint that tells two builds with different package sets apart.

Why a second, label-only build step: docker-py drives the legacy builder, where a LABEL can only
hold what is known before the build starts, and the package list is known only after it. So the
build runs as before, ptdesk reads the file back from a created (never started) container of the
result, and builds `FROM <that id>` with the labels: no layer is added and no container runs
(a `docker commit` would add an empty layer and needs a container lifecycle of its own).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ptdesk.core.engine.client import Engine
from ptdesk.errors import PtdeskError

ENV_FILE = "/etc/ptdesk/environment.json"
PROBE_NAME = "ptdesk-env-probe"  # the probe's name in every build context
NONE = "none"
LABEL_PREFIX = "ptdesk.env."
LABEL_FINGERPRINT = LABEL_PREFIX + "fingerprint"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SUMMARY = ("os", "python", "torch", "cuda", "cudnn", "nccl", "packages", "base-id", "base-digest")


@dataclass(frozen=True)
class Package:
    name: str  # normalised as pip does (PEP 503)
    version: str
    user: str | None = None  # account owning its dist-info folder, inside the container
    uid: int | None = None
    location: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "user": self.user, "uid": self.uid,
                "location": self.location}


@dataclass(frozen=True)
class Environment:
    """One probe document: an image's at build time, or a running container's now."""

    os: str
    python: str | None
    packages: tuple[Package, ...]
    torch: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    nccl: str | None = None
    conda: tuple[Package, ...] | None = None
    executable: str | None = None

    @classmethod
    def from_probe(cls, data: Mapping) -> Environment:
        """From the probe's JSON. Text comes from inside a container: control characters are dropped."""
        data = _cleaned(data)
        torch = data.get("torch") or {}
        packages = tuple(Package(p["name"], str(p["version"]), p.get("user"), p.get("uid"), p.get("location"))
                         for p in data.get("packages") or () if p.get("name"))
        conda = data.get("conda")
        return cls(os=str(data.get("os") or "unknown"), python=data.get("python"), packages=packages,
                   torch=torch.get("version"), cuda=torch.get("cuda"),
                   cudnn=None if torch.get("cudnn") is None else str(torch["cudnn"]), nccl=torch.get("nccl"),
                   conda=None if conda is None else tuple(Package(str(p["name"]), str(p["version"]))
                                                          for p in conda if p.get("name")),
                   executable=data.get("executable"))

    @property
    def versions(self) -> dict[str, str]:
        """Package name -> version."""
        return {p.name: p.version for p in self.packages}

    def fingerprint(self, cuda: str | None = None, cudnn: str | None = None) -> str:
        """12 hex characters over Python, CUDA, cuDNN and the sorted package list. `cuda`/`cudnn`
        stand in for this document's own (a live probe does not import torch: it takes the build's)."""
        return fingerprint(self.python, cuda or self.cuda, cudnn or self.cudnn, self.versions)

    def to_json(self) -> dict:
        return {"os": self.os, "python": self.python, "executable": self.executable, "torch": self.torch,
                "cuda": self.cuda, "cudnn": self.cudnn, "nccl": self.nccl,
                "fingerprint": self.fingerprint(),
                "packages": [p.to_json() for p in self.packages],
                "conda": None if self.conda is None else [{"name": p.name, "version": p.version} for p in self.conda]}


@dataclass(frozen=True)
class PackageChange:
    """One package that differs between two environments (experiment vs image, A vs B, build vs pin)."""

    name: str
    before: str | None  # None: not there before (installed)
    after: str | None  # None: gone (removed)
    by: str | None = None  # who, when the files say so

    @property
    def change(self) -> str:
        return "installed" if self.before is None else "removed" if self.after is None else "changed"

    def to_json(self) -> dict:
        return {"name": self.name, "change": self.change, "before": self.before, "after": self.after, "by": self.by}



def _cleaned(value: object) -> object:
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def fingerprint(python: str | None, cuda: str | None, cudnn: str | None, versions: Mapping[str, str]) -> str:
    document = {"python": python or NONE, "cuda": cuda or NONE, "cudnn": cudnn or NONE,
                "packages": sorted(f"{name}=={version}" for name, version in versions.items())}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ImageSummary:
    """What an image's labels say about its environment (cheap: one inspect, no container)."""

    image_id: str
    fingerprint: str
    os: str
    python: str
    torch: str
    cuda: str
    cudnn: str
    nccl: str
    packages: int
    base: str | None
    base_id: str
    base_digest: str

    @classmethod
    def from_labels(cls, image_id: str, labels: Mapping[str, str]) -> ImageSummary | None:
        """None for an image ptdesk did not record (built by hand, or by an older ptdesk)."""
        if LABEL_FINGERPRINT not in labels:
            return None
        get = {key: labels.get(LABEL_PREFIX + key, NONE) for key in _SUMMARY}
        try:
            count = int(get["packages"])
        except ValueError:
            count = 0
        return cls(image_id, labels[LABEL_FINGERPRINT], get["os"], get["python"], get["torch"], get["cuda"],
                   get["cudnn"], get["nccl"], count, labels.get("ptdesk.base"), get["base-id"], get["base-digest"])

    def to_json(self) -> dict:
        return {"image_id": self.image_id, "fingerprint": self.fingerprint, "os": self.os, "python": self.python,
                "torch": self.torch, "cuda": self.cuda, "cudnn": self.cudnn, "nccl": self.nccl,
                "packages": self.packages, "base": self.base, "base_id": self.base_id,
                "base_digest": self.base_digest}


def summary_of(info: Mapping | None) -> ImageSummary | None:
    """The summary in an image's inspect document, or None."""
    if not info:
        return None
    return ImageSummary.from_labels(info["Id"], (info.get("Config") or {}).get("Labels") or {})


def labels_for(env: Environment, base_info: Mapping | None) -> dict[str, str]:
    digests = (base_info or {}).get("RepoDigests") or []
    values = {"os": env.os, "python": env.python, "torch": env.torch, "cuda": env.cuda, "cudnn": env.cudnn,
              "nccl": env.nccl, "packages": str(len(env.packages)),
              "base-id": (base_info or {}).get("Id"), "base-digest": digests[0] if digests else None}
    labels = {LABEL_PREFIX + key: str(value) if value else NONE for key, value in values.items()}
    labels[LABEL_FINGERPRINT] = env.fingerprint()
    return labels


def probe_source(root: Path) -> bytes:
    path = root / "env-probe"
    try:
        return path.read_bytes()
    except OSError:
        raise PtdeskError(f"ptdesk's environment probe {path} is missing.",
                          "Reinstall ptdesk (pip install .) from a complete source checkout.") from None


def parse_probe(output: bytes, where: str) -> Environment:
    """The probe prints one JSON line; anything else (warnings, a shell error) is not the answer."""
    for line in reversed(output.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return Environment.from_probe(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):  # any JSON that is not the answer
                break
    text = output.decode(errors="replace").strip().splitlines()
    raise PtdeskError(f"The environment probe in {where} gave no answer ({text[-1] if text else 'no output'}).",
                      "Rebuild the image with: ptdesk images build")


def read_recorded(engine: Engine, container: str) -> Environment | None:
    """The environment recorded in the image a container was created from (None: not recorded)."""
    try:
        data = engine.read_file(container, ENV_FILE)
    except PtdeskError:
        return None
    return parse_probe(data, container[:12]) if data.strip() else None


def image_environment(engine: Engine, image: str) -> Environment | None:
    """The environment file inside an image, read through a created, never started container."""
    with engine.scratch_container(image) as container:
        return read_recorded(engine, container)


def record_build(engine: Engine, tag: str, base_info: Mapping | None,
                 on_line: Callable[[str], None]) -> tuple[str, Environment]:
    """Label the image just built as `tag` with its environment; returns (final image id, environment)."""
    built = engine.image_info(tag)
    if built is None:
        raise PtdeskError(f"The engine finished building {tag} but the image is not there.",
                          "Run the build again; check `docker images` and the engine's log.")
    env = image_environment(engine, built["Id"])
    if env is None:
        raise PtdeskError(f"The build of {tag} recorded no environment ({ENV_FILE} is missing).",
                          "Rebuild with ptdesk's own Dockerfiles: ptdesk images build --force")
    engine.build(_label_context(built["Id"]), tag, {}, on_line, labels=labels_for(env, base_info))
    final = engine.image_info(tag)
    assert final is not None
    return final["Id"], env


def _label_context(image_id: str) -> bytes:
    dockerfile = f"FROM {image_id}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    return buffer.getvalue()
