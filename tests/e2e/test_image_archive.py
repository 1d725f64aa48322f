"""`ptdesk images save` / `images load` into a second engine (a stand-in for another site that can
neither build nor pull): the same image id and recorded environment arrive; a tampered file, or
one ptdesk did not make, is refused in one line and nothing is loaded."""

from __future__ import annotations

import shutil
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.recorded import image_environment
from tests.support import archive_bytes
from tests.support.helpers import BASE_IMAGE, SSH_IMAGE

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

pytestmark = pytest.mark.engine


def _flip_a_byte_in_a_layer(path: Path) -> str:
    """Change one byte in the middle of the largest layer, in place; returns that member's name."""
    with tarfile.open(path) as tar:
        layer = max((m for m in tar.getmembers() if m.name.endswith("layer.tar")), key=lambda m: m.size)
    with open(path, "r+b") as handle:
        handle.seek(layer.offset_data + layer.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return layer.name


def test_saved_images_load_elsewhere_with_the_same_id_and_environment(cli: Ptdesk, engine: Engine,
                                                                      second_engine: str, tmp_path: Path) -> None:
    archive, tampered, plain = tmp_path / "images.tar", tmp_path / "tampered.tar", tmp_path / "plain.tar"
    elsewhere = {"DOCKER_HOST": second_engine}
    try:
        saved = cli.json("images", "save", "ssh", archive)
        assert [i["image_id"] for i in saved["images"]] == [engine.image_info(SSH_IMAGE)["Id"]]

        shutil.copyfile(archive, tampered)
        member = _flip_a_byte_in_a_layer(tampered)
        lines = cli.fails("images", "load", tampered, extra_env=elsewhere)
        assert f"was changed after it was saved ({member} does not match its sha256)" in lines[0]
        with open(plain, "wb") as out:  # what plain `docker save` writes: no ptdesk manifest
            for chunk in engine.save_images([SSH_IMAGE]):
                out.write(chunk)
        assert "has no ptdesk manifest" in cli.fails("images", "load", plain, extra_env=elsewhere)[0]
        other = Engine(docker.DockerClient(base_url=second_engine))
        try:
            assert other.api.images() == []  # nothing was loaded from either

            loaded = cli.json("images", "load", archive, extra_env=elsewhere)
            assert loaded["images"] == saved["images"]
            info = other.image_info(SSH_IMAGE)
            assert info is not None and info["Id"] == saved["images"][0]["image_id"]
            there = next(i for i in cli.json("images", "ls", extra_env=elsewhere) if i["target"] == "ssh")
            assert there["environment"] == saved["images"][0]["environment"]
            assert image_environment(other, info["Id"]) == image_environment(engine, info["Id"])
        finally:
            other.close()
    finally:
        for path in (archive, tampered, plain):
            path.unlink(missing_ok=True)


def test_bad_save_and_load_input_is_one_clear_line(cli: Ptdesk, tmp_path: Path) -> None:
    assert "Unknown image 'gpu'" in cli.fails("images", "save", "gpu", tmp_path / "x.tar")[0]
    assert "'ssh' is an image kind, not a file to write" in cli.fails("images", "save", "ssh")[0]
    assert "does not exist" in cli.fails("images", "load", tmp_path / "missing.tar")[0]
    assert "is a folder" in cli.fails("images", "save", "ssh", tmp_path)[0]
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    assert "is not a readable ptdesk image archive" in cli.fails("images", "load", tmp_path / "junk.tar")[0]
    assert list(tmp_path.iterdir()) == [tmp_path / "junk.tar"]  # no partial file left behind


def test_a_hostile_archive_with_an_extra_image_or_tag_is_refused_and_nothing_is_loaded_or_retagged(
        cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    """Issue 20, finding 5: a second self-consistent image (or a second name on the claimed one)
    whose Docker manifest tags someone else's image must never reach the engine; neither must an
    image other than the team's pinned one."""
    run = uuid.uuid4().hex[:10]
    victim, shown = f"ptdesk-test/victim-{run}:latest", f"ptdesk-test/shown-{run}:latest"
    claimed = archive_bytes.TinyImage(f"the image the report shows {run}", (shown,))
    hidden = archive_bytes.TinyImage(f"a hidden image {run}", (victim,))
    claim = [("ssh", shown, claimed.image_id)]
    engine.api.tag(BASE_IMAGE, *victim.split(":"))  # someone's image, under a tag this test made
    victim_id = engine.image_info(victim)["Id"]
    try:
        archive_bytes.write(tmp_path / "hidden.tar", [claimed, hidden], claim)
        assert "holds an extra image" in cli.fails("images", "load", tmp_path / "hidden.tar")[0]
        renamed = archive_bytes.TinyImage(claimed.text, (shown, victim))
        archive_bytes.write(tmp_path / "renamed.tar", [renamed], claim, repositories={})
        assert f"the extra tag {victim!r}" in cli.fails("images", "load", tmp_path / "renamed.tar")[0]
        assert engine.image_info(victim)["Id"] == victim_id
        assert engine.image_info(claimed.image_id) is None and engine.image_info(hidden.image_id) is None

        # The same image, exactly as claimed, is loaded; unless the team's pin says otherwise.
        archive_bytes.write(tmp_path / "exact.tar", [claimed], claim)
        cli.ok("images", "pin", "ssh")
        refused = cli.fails("images", "load", tmp_path / "exact.tar")
        assert "but the team's baseline pins" in refused[0] and "--unpinned" in refused[1]
        assert engine.image_info(claimed.image_id) is None
        loaded = cli.json("images", "load", tmp_path / "exact.tar", "--unpinned")
        assert [i["image_id"] for i in loaded["images"]] == [claimed.image_id]
        assert engine.image_info(shown)["Id"] == claimed.image_id
        assert engine.image_info(victim)["Id"] == victim_id
    finally:
        for ref in (shown, victim):
            if engine.image_info(ref) is not None:
                engine.api.remove_image(ref, noprune=False)
