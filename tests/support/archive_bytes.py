"""Image archives built byte by byte, as an attacker would: tiny self-consistent images (one file
each, a real config whose hash is the image id) in either `docker save` layout, with whatever names
in Docker's manifest.json, the legacy `repositories` file or an OCI index.json, and a ptdesk manifest
that claims only what the test says. Plain enough for `docker load` to accept."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ptdesk.core.environment import archive
from ptdesk.core.environment.archive import FORMAT, MANIFEST


@dataclass
class TinyImage:
    text: str  # the content of its one file; a unique text makes a unique image id
    tags: tuple[str, ...]

    @property
    def layer(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            add(tar, "hello.txt", self.text.encode(), mtime=0)  # same text, same bytes, same id
        return buffer.getvalue()

    @property
    def config(self) -> bytes:
        diff_id = f"sha256:{hashlib.sha256(self.layer).hexdigest()}"
        return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
                           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()

    @property
    def image_id(self) -> str:
        return f"sha256:{hashlib.sha256(self.config).hexdigest()}"


def add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time()) if mtime is None else mtime
    tar.addfile(info, io.BytesIO(data))


def write(path: Path, images: list[TinyImage], claims: list[tuple[str, str, str]], *, oci: bool = False,
          repositories: dict | None = None, index_names: dict[str, str] | None = None) -> None:
    """`claims`: (kind, tag, image_id) in the ptdesk manifest. `index_names` (OCI only): image id ->
    the name an index.json entry gives it."""
    entries, index = [], []
    with tarfile.open(path, "w") as tar:
        for image in images:
            config_id = image.image_id.removeprefix("sha256:")
            if oci:
                blob = gzip.compress(image.layer)
                layer_name = f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"
                config_name = f"blobs/sha256/{config_id}"
            else:
                blob, layer_name, config_name = image.layer, f"{config_id[:20]}/layer.tar", f"{config_id}.json"
            add(tar, config_name, image.config)
            add(tar, layer_name, blob)
            entries.append({"Config": config_name, "RepoTags": list(image.tags) or None, "Layers": [layer_name]})
            if oci and index_names is not None:
                index.append(_index_entry(tar, image, layer_name, blob, index_names))
        add(tar, "manifest.json", json.dumps(entries).encode())
        if repositories is not None:
            add(tar, "repositories", json.dumps(repositories).encode())
        if oci and index_names is not None:
            add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": index}).encode())
    members = archive._member_hashes(path)
    manifest = {"format": FORMAT, "created": time.time(), "members": members,
                "images": [{"kind": k, "tag": t, "image_id": i, "environment": None} for k, t, i in claims]}
    with tarfile.open(path, "a") as tar:
        add(tar, MANIFEST, json.dumps(manifest).encode())


def _index_entry(tar: tarfile.TarFile, image: TinyImage, layer_name: str, blob: bytes,
                 names: dict[str, str]) -> dict:
    """An image manifest blob for `image` and the index.json descriptor pointing at it."""
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.image_id,
                   "size": len(image.config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + layer_name.rsplit("/", 1)[-1], "size": len(blob)}]}).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    add(tar, f"blobs/sha256/{digest}", manifest)
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{digest}",
                  "size": len(manifest)}
    if image.image_id in names:
        descriptor["annotations"] = {"io.containerd.image.name": names[image.image_id]}
    return descriptor
