"""`ptdesk images save|load`: the exact images, with their recorded environment, as one file for an
engine that cannot build or pull them (a second site, an air-gapped box).

The file is what `docker save` writes (so plain `docker load` still reads it), plus one member,
`ptdesk-manifest.json`, appended at its end: the images (kind, tag, id, fingerprint) and the
sha256 and size of every other member. `load` checks all of it before the engine sees a byte:
each member's hash, that no member was added or dropped, that each image's config hashes to the
image id it claims (Docker's own content address) and that each layer hashes to the diff_id that
config lists. It also holds exactly the images and tags the manifest claims: an extra image, or
an extra name in Docker's manifest.json, legacy `repositories` file or OCI index.json (which
`docker load` would apply, retagging another person's image, the sampler or a base image), is
refused. Anything off: one sentence, nothing loaded. After loading, the tags must name the ids the
manifest claims. (Integrity, not authorship: `load` also compares the ids with the team's pin.)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ptdesk.config import Config
from ptdesk.core.base.text import printable
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.recorded import ImageSummary, summary_of
from ptdesk.core.kinds import get_kind
from ptdesk.errors import InvalidInput, NotFound, PtdeskError

MANIFEST = "ptdesk-manifest.json"
FORMAT = "ptdesk-images/1"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SavedImage:
    kind: str
    tag: str
    image_id: str
    environment: ImageSummary | None

    def to_json(self) -> dict:
        return {"kind": self.kind, "tag": self.tag, "image_id": self.image_id,
                "fingerprint": self.environment.fingerprint if self.environment else None,
                "environment": self.environment.to_json() if self.environment else None}


@dataclass(frozen=True)
class ArchiveReport:
    path: Path
    images: tuple[SavedImage, ...]
    size: int
    seconds: float

    def to_json(self) -> dict:
        return {"file": str(self.path), "size": self.size, "seconds": round(self.seconds, 2),
                "images": [i.to_json() for i in self.images]}


class TamperedArchive(PtdeskError):
    """The file's content is not what its manifest claims."""


def save(engine: Engine, config: Config, kinds: Iterable[str], path: Path) -> ArchiveReport:
    started = time.monotonic()
    images = []
    for kind in kinds:
        tag = get_kind(kind).image(config)
        info = engine.image_info(tag)
        if info is None:
            raise NotFound(f"The {kind} image {tag} is not on this engine.",
                           f"Build it first: ptdesk images build {kind}")
        images.append(SavedImage(kind, tag, info["Id"], summary_of(info)))
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder.", "Name the file to write, e.g. ptdesk-images.tar")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as out:
            for chunk in engine.save_images([i.tag for i in images]):
                out.write(chunk)
        members = _member_hashes(partial)
        manifest = {"format": FORMAT, "created": time.time(), "images": [i.to_json() for i in images],
                    "members": members}
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        with tarfile.open(partial, "a") as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
        os.replace(partial, path)
    except OSError as exc:
        raise PtdeskError(f"{path} cannot be written ({exc.strerror or exc}).",
                          "Pick a folder you may write with room for the images.") from None
    finally:
        partial.unlink(missing_ok=True)
    return ArchiveReport(path, tuple(images), path.stat().st_size, time.monotonic() - started)


def verify(path: Path) -> tuple[SavedImage, ...]:
    """Check the whole file against its manifest (see the module doc); TamperedArchive if it is off."""
    try:
        with tarfile.open(path, "r:") as tar:
            manifest = _manifest(tar, path)
            hashes = {m.name: m for m in tar.getmembers() if m.isfile() and m.name != MANIFEST}
            claimed = manifest.get("members") or {}
            if set(hashes) != set(claimed):
                extra = sorted(set(hashes) ^ set(claimed))[0]
                raise TamperedArchive(f"{path} does not hold what its manifest lists (member {extra!r}).",
                                      _TAMPER_HINT)
            digests = {name: _sha256(tar.extractfile(member)) for name, member in hashes.items()}
            for name, digest in digests.items():
                if digest != claimed[name]["sha256"]:
                    raise TamperedArchive(f"{path} was changed after it was saved ({name} does not match its "
                                          "sha256).", _TAMPER_HINT)
            ids = _check_docker_manifest(tar, digests, path)
            images = tuple(SavedImage(i["kind"], i["tag"], i["image_id"],
                                      ImageSummary(**i["environment"]) if i.get("environment") else None)
                           for i in manifest["images"])
            _check_names(tar, images, digests, path)
    except (tarfile.TarError, OSError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise NotFound(f"{path} does not exist.", "Name a file made by: ptdesk images save") from None
        raise TamperedArchive(f"{path} is not a readable ptdesk image archive ({exc}).", _TAMPER_HINT) from None
    for image in images:
        if image.image_id.removeprefix("sha256:") not in ids:
            raise TamperedArchive(f"{path} claims image {image.image_id[7:19]} for {image.tag}, but holds no "
                                  "such image.", _TAMPER_HINT)
    return images


_TAMPER_HINT = "Nothing was loaded. Copy the file again from its source, or save it anew: ptdesk images save FILE"


def load(engine: Engine, path: Path, pinned: Mapping[str, str] | None = None) -> ArchiveReport:
    """Verify, then load. `pinned` (kind -> the team's pinned image id): an image of a pinned kind
    that is not the pinned one is refused before the engine sees a byte."""
    started = time.monotonic()
    images = verify(path)
    for image in images:
        want = (pinned or {}).get(image.kind)
        if want is not None and want != image.image_id:
            raise PtdeskError(f"{path} holds {image.image_id[7:19]} for {image.tag}, but the team's baseline pins "
                              f"{want[7:19]}; nothing was loaded.",
                              "Load it anyway with --unpinned (then `ptdesk images pin` if it is the team's new "
                              "image), or get the pinned one: ptdesk images save on a workstation that has it.")
    with open(path, "rb") as stream:
        engine.load_images(stream)
    for image in images:
        info = engine.image_info(image.tag)
        if info is None or info["Id"] != image.image_id:
            got = info["Id"][7:19] if info else "nothing"
            raise TamperedArchive(f"After loading, {image.tag} is {got}, not {image.image_id[7:19]} as "
                                  f"{path} claims.", "Check the file and the engine; load it again.")
    return ArchiveReport(path, images, path.stat().st_size, time.monotonic() - started)


_NAME_HINT = ("Nothing was loaded. ptdesk loads only files that hold exactly the images and tags its manifest "
              "lists; save it anew with: ptdesk images save FILE")
# Where Docker 25+ and containerd write an image's name into an OCI index.json.
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_KIND = re.compile(r"[a-z][a-z0-9]{0,30}")
_REFERENCE = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
_ID = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                         "application/vnd.docker.distribution.manifest.v2+json")


def _short_name(name: str) -> str:
    """A reference as `docker images` shows it (docker.io/library/x:1 -> x:1)."""
    return name.removeprefix("docker.io/").removeprefix("library/")


def _check_names(tar: tarfile.TarFile, images: tuple[SavedImage, ...], digests: Mapping[str, str],
                 path: Path) -> None:
    """Every image and every name `docker load` would apply is one the manifest claims (see the
    module doc): an archive may hold nothing beyond what the report shows."""
    claimed: dict[str, set[str]] = {}
    for image in images:
        # The manifest is the archive's own text, printed by `images load`: plain names only.
        if not (_KIND.fullmatch(image.kind) and _REFERENCE.fullmatch(image.tag) and _ID.fullmatch(image.image_id)):
            raise TamperedArchive(f"{path} names an image {printable(image.tag)!r} of kind {printable(image.kind)!r} "
                                  "that is not a plain image name, kind and id.", _NAME_HINT)
        claimed.setdefault(image.image_id.removeprefix("sha256:"), set()).add(image.tag)

    def refuse(what: str) -> TamperedArchive:
        return TamperedArchive(f"{path} holds {what}, which its ptdesk manifest does not list.", _NAME_HINT)

    entries = _json_member(tar, "manifest.json") or []
    for entry in entries:
        image_id = digests[entry["Config"]]
        if image_id not in claimed:
            names = printable(", ".join(entry.get("RepoTags") or ["untagged"]))
            raise refuse(f"an extra image {image_id[:12]} ({names})")
        extra = sorted(set(entry.get("RepoTags") or ()) - claimed[image_id])
        if extra:
            raise refuse(f"the extra tag {extra[0]!r}")
    if len(entries) != len(claimed):
        raise refuse("a different set of images")
    tags = {tag for names in claimed.values() for tag in names}
    for repo, by_tag in (_json_member(tar, "repositories") or {}).items():
        for tag in by_tag:
            if f"{repo}:{tag}" not in tags:
                raise refuse(f"the extra tag {f'{repo}:{tag}'!r} (in its repositories file)")
    for descriptor in (_json_member(tar, "index.json") or {}).get("manifests", []):
        _check_index_entry(tar, descriptor, claimed, refuse)


def _check_index_entry(tar: tarfile.TarFile, descriptor: dict, claimed: Mapping[str, set[str]],
                       refuse: Callable[[str], TamperedArchive]) -> None:
    """One OCI index.json entry: an image manifest of a claimed image, named only as claimed."""
    if descriptor.get("mediaType") not in _IMAGE_MANIFEST_TYPES:
        raise refuse(f"an index entry of type {descriptor.get('mediaType')!r} (only single images are loaded)")
    manifest = _json_member(tar, "blobs/" + str(descriptor["digest"]).replace(":", "/")) or {}
    image_id = str(manifest["config"]["digest"]).removeprefix("sha256:")
    if image_id not in claimed:
        raise refuse(f"an extra image {image_id[:12]} (in its index.json)")
    allowed = {_short_name(tag) for tag in claimed[image_id]} | {tag.rsplit(":", 1)[-1] for tag in claimed[image_id]}
    for key in _NAME_ANNOTATIONS:
        name = (descriptor.get("annotations") or {}).get(key)
        if name is not None and _short_name(str(name)) not in allowed:
            raise refuse(f"the extra tag {name!r} (in its index.json)")


def _json_member(tar: tarfile.TarFile, name: str) -> Any:
    """A JSON member's content, or None when the archive has no such member."""
    try:
        handle = tar.extractfile(name)
    except KeyError:
        return None
    return json.loads(handle.read()) if handle else None


def _manifest(tar: tarfile.TarFile, path: Path) -> dict:
    try:
        member = tar.getmember(MANIFEST)
    except KeyError:
        raise TamperedArchive(f"{path} has no ptdesk manifest (not made by `ptdesk images save`).",
                              "Load plain `docker save` files with `docker load`; ptdesk only loads what it "
                              "can verify.") from None
    handle = tar.extractfile(member)
    manifest = json.loads(handle.read() if handle else b"{}")
    if manifest.get("format") != FORMAT:
        raise TamperedArchive(f"{path} is not a {FORMAT} archive.", _TAMPER_HINT)
    return manifest


def _check_docker_manifest(tar: tarfile.TarFile, digests: Mapping[str, str], path: Path) -> set[str]:
    """Each image config must hash to its name (the image id) and list the layers' own hashes;
    returns the image ids the archive really holds. Both `docker save` layouts are read: the
    classic one (`<id>.json`, uncompressed `<layer>/layer.tar`) and the OCI one Docker 25+ writes
    (`blobs/sha256/<digest>`, layers possibly gzip-compressed: their diff_id is the digest of the
    uncompressed tar)."""
    handle = tar.extractfile("manifest.json")
    entries = json.loads(handle.read() if handle else b"[]")
    for entry in entries:
        config_name = entry["Config"]
        if digests[config_name] != config_name.removesuffix(".json").split("/")[-1].removeprefix("sha256:"):
            raise TamperedArchive(f"{path}: the image config {config_name} does not match its id.", _TAMPER_HINT)
        config_file = tar.extractfile(config_name)
        config = json.loads(config_file.read() if config_file else b"{}")
        diff_ids = [d.removeprefix("sha256:") for d in config["rootfs"]["diff_ids"]]
        layers = [_diff_id(tar, name, digests[name]) for name in entry["Layers"]]
        if layers != diff_ids:
            raise TamperedArchive(f"{path}: a layer of {', '.join(entry.get('RepoTags') or [config_name])} does "
                                  "not match the image's config.", _TAMPER_HINT)
    return {digests[entry["Config"]] for entry in entries}


def _diff_id(tar: tarfile.TarFile, name: str, digest: str) -> str:
    """The digest of a layer's uncompressed tar: the blob's own for an uncompressed layer, else the
    gzip stream's content (zstd layers cannot be checked with the standard library: refused)."""
    handle = tar.extractfile(name)
    head = handle.read(4) if handle else b""
    if head[:2] == b"\x1f\x8b":
        with gzip.open(tar.extractfile(name)) as unpacked:  # type: ignore[arg-type]
            return _sha256(unpacked)  # type: ignore[arg-type]
    if head == b"\x28\xb5\x2f\xfd":
        raise TamperedArchive(f"A layer ({name}) is zstd-compressed, which ptdesk cannot verify.",
                              "Save the images from an engine that writes gzip or plain layers.")
    return digest


def _member_hashes(path: Path) -> dict[str, dict]:
    with tarfile.open(path, "r:") as tar:
        return {m.name: {"sha256": _sha256(tar.extractfile(m)), "size": m.size}
                for m in tar.getmembers() if m.isfile()}


def _sha256(handle: IO[bytes] | None) -> str:
    sha = hashlib.sha256()
    if handle is not None:
        for chunk in _chunks(handle):
            sha.update(chunk)
    return sha.hexdigest()


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk
