"""`images load` verifies both layouts `docker save` writes: the classic one (Docker 20.10, what this
machine's engine writes, tested end to end in tests/e2e/test_image_archive.py) and the OCI layout
Docker 25+ writes (`blobs/sha256/<digest>`, gzip layers possible), built here byte by byte."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from ptdesk.core.environment import archive
from ptdesk.core.environment.archive import FORMAT, MANIFEST, TamperedArchive, verify
from tests.support import archive_bytes


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _oci_archive(path: Path, tamper_layer: bool = False) -> str:
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as layer:
        _add(layer, "etc/hello", b"hello\n")
    plain = layer_tar.getvalue()
    blob = gzip.compress(plain if not tamper_layer else plain + b"\0" * 512)
    config = json.dumps({"rootfs": {"type": "layers",
                                    "diff_ids": [f"sha256:{hashlib.sha256(plain).hexdigest()}"]}}).encode()
    config_digest, blob_digest = hashlib.sha256(config).hexdigest(), hashlib.sha256(blob).hexdigest()
    entries = [{"Config": f"blobs/sha256/{config_digest}", "RepoTags": ["ptdesk/ssh:latest"],
                "Layers": [f"blobs/sha256/{blob_digest}"]}]
    with tarfile.open(path, "w") as tar:
        _add(tar, f"blobs/sha256/{config_digest}", config)
        _add(tar, f"blobs/sha256/{blob_digest}", blob)
        _add(tar, "manifest.json", json.dumps(entries).encode())
    members = archive._member_hashes(path)
    manifest = {"format": FORMAT, "created": time.time(), "members": members,
                "images": [{"kind": "ssh", "tag": "ptdesk/ssh:latest", "image_id": f"sha256:{config_digest}",
                            "environment": None}]}
    with tarfile.open(path, "a") as tar:
        _add(tar, MANIFEST, json.dumps(manifest).encode())
    return config_digest


def test_an_oci_layout_archive_with_gzip_layers_verifies(tmp_path: Path) -> None:
    digest = _oci_archive(tmp_path / "images.tar")
    [image] = verify(tmp_path / "images.tar")
    assert image.image_id == f"sha256:{digest}"


def test_an_oci_layer_that_is_not_what_the_config_says_is_refused(tmp_path: Path) -> None:
    _oci_archive(tmp_path / "images.tar", tamper_layer=True)
    with pytest.raises(TamperedArchive, match="layer"):
        verify(tmp_path / "images.tar")


# --- an archive holds exactly what its manifest claims (issue 20, finding 5) ----------------------
CLAIMED = archive_bytes.TinyImage("the ssh image the report shows", ("ptdesk/ssh:latest",))
HIDDEN = archive_bytes.TinyImage("a second, self-consistent image", ("some/other:latest",))
CLAIM = [("ssh", "ptdesk/ssh:latest", CLAIMED.image_id)]


@pytest.mark.parametrize("oci", [False, True], ids=["classic", "oci"])
def test_an_archive_exactly_as_claimed_verifies(tmp_path: Path, oci: bool) -> None:
    archive_bytes.write(tmp_path / "a.tar", [CLAIMED], CLAIM, oci=oci,
                        index_names={CLAIMED.image_id: "docker.io/ptdesk/ssh:latest"} if oci else None)
    assert [i.image_id for i in verify(tmp_path / "a.tar")] == [CLAIMED.image_id]


@pytest.mark.parametrize("oci", [False, True], ids=["classic", "oci"])
def test_a_second_image_the_manifest_does_not_list_is_refused(tmp_path: Path, oci: bool) -> None:
    archive_bytes.write(tmp_path / "a.tar", [CLAIMED, HIDDEN], CLAIM, oci=oci)
    with pytest.raises(TamperedArchive, match=r"an extra image .*some/other:latest.*does not list"):
        verify(tmp_path / "a.tar")


@pytest.mark.parametrize("oci", [False, True], ids=["classic", "oci"])
def test_an_extra_tag_on_the_claimed_image_is_refused(tmp_path: Path, oci: bool) -> None:
    both = archive_bytes.TinyImage(CLAIMED.text, ("ptdesk/ssh:latest", "some/other:latest"))
    archive_bytes.write(tmp_path / "a.tar", [both], CLAIM, oci=oci)
    with pytest.raises(TamperedArchive, match="the extra tag 'some/other:latest'"):
        verify(tmp_path / "a.tar")


def test_an_extra_name_in_the_legacy_repositories_file_is_refused(tmp_path: Path) -> None:
    archive_bytes.write(tmp_path / "a.tar", [CLAIMED], CLAIM, repositories={"some/other": {"latest": "0" * 64}})
    with pytest.raises(TamperedArchive, match="'some/other:latest' \\(in its repositories file\\)"):
        verify(tmp_path / "a.tar")


def test_an_oci_index_naming_the_claimed_image_otherwise_is_refused(tmp_path: Path) -> None:
    archive_bytes.write(tmp_path / "a.tar", [CLAIMED], CLAIM, oci=True,
                        index_names={CLAIMED.image_id: "docker.io/some/other:latest"})
    with pytest.raises(TamperedArchive, match="'docker.io/some/other:latest' \\(in its index.json\\)"):
        verify(tmp_path / "a.tar")


def test_a_manifest_naming_its_image_with_escape_sequences_is_refused_and_not_echoed(tmp_path: Path) -> None:
    """`images load` prints the manifest's names: they must be plain, never an escape sequence."""
    odd = archive_bytes.TinyImage(CLAIMED.text, ("ptdesk/ssh:latest\x1b]52;c;eA==\x07",))
    archive_bytes.write(tmp_path / "a.tar", [odd], [("ssh", odd.tags[0], CLAIMED.image_id)])
    with pytest.raises(TamperedArchive, match="not a plain image name") as caught:
        verify(tmp_path / "a.tar")
    assert "\x1b" not in caught.value.message and "\x07" not in caught.value.message


def test_load_check_says_how_long_the_verification_took(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`images load --check` printed "0.0 s" whatever it took: the verification is timed now."""
    from ptdesk.config import load_config
    from ptdesk.core.workstation import Workstation

    _oci_archive(tmp_path / "images.tar")
    ticks = iter([100.0, 102.5])  # the monotonic clock before and after the verification
    monkeypatch.setattr(time, "monotonic", lambda: next(ticks))
    ws = Workstation(load_config({"PTDESK_HOME": str(tmp_path / "home")}))
    report = ws.verify_images(tmp_path / "images.tar")
    assert report.seconds == 2.5 and [i.kind for i in report.images] == ["ssh"]
