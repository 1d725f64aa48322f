"""Key files: the owner's key pair is never replaced once made, and people's .pub files are read
with one clear error for each way they can be wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ptdesk.core.base import keys, private_files
from ptdesk.errors import BadKey, NotFound


def test_a_lost_public_half_is_derived_from_the_private_key_never_regenerated(tmp_path: Path) -> None:
    folder = tmp_path / "keys" / "users" / "alice"
    private, public_line = keys.load_or_create(folder, comment="alice@ptdesk")
    private_bytes = private.read_bytes()
    (folder / "id_ed25519.pub").unlink()

    again, derived = keys.load_or_create(folder, comment="alice@ptdesk")
    # Every container made so far trusts this private key: it must be the very same one.
    assert again == private and private.read_bytes() == private_bytes
    assert derived == public_line == (folder / "id_ed25519.pub").read_text().strip()
    # What OpenSSH itself derives from the private key.
    openssh = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True)
    assert openssh.stdout.split()[:2] == derived.split()[:2]
    assert (folder / "id_ed25519.pub").stat().st_mode & 0o777 == 0o644


def test_a_damaged_private_key_without_its_public_half_is_a_clear_error(tmp_path: Path) -> None:
    folder = private_files.ensure_private_dir(tmp_path / "alice")
    private_files.write_secret(folder / "id_ed25519", b"-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n", 0o600)
    with pytest.raises(BadKey, match="public half cannot be derived"):
        keys.load_or_create(folder, comment="alice@ptdesk")
    assert (folder / "id_ed25519").read_bytes().endswith(b"garbage\n")  # left alone, not replaced


def test_public_key_files_are_read_and_validated(tmp_path: Path) -> None:
    pair = keys.generate("bob@laptop")
    good = tmp_path / "bob.pub"
    good.write_text(f"# bob's key\n{pair.public_line}\n")
    assert keys.read_public_key_file(good) == pair.public_line
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-base64!!\n")
    with pytest.raises(BadKey, match="malformed"):
        keys.read_public_key_file(bad)
    with pytest.raises(NotFound, match="cannot be read"):
        keys.read_public_key_file(tmp_path / "missing.pub")
    # Not a key at all (a note, a fingerprint pasted instead): said so, not "Key type 'SHA256:...'".
    for text in ("not a key\n", "SHA256:b34Ngwly4CO8/2yXyiu9FtWhoCUvpanbPhvr5lN1hQk bob\n"):
        bad.write_text(text)
        with pytest.raises(BadKey, match="^That is not an OpenSSH public key") as caught:
            keys.read_public_key_file(bad)
        assert "ssh-keygen" in (caught.value.hint or "")
    binary = tmp_path / "binary.pub"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(NotFound, match="cannot be read"):
        keys.read_public_key_file(binary)
