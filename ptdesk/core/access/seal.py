"""Seals: how this ptdesk home proves a container is one it made. Labels are not identity.

Anyone who may use the engine can create a container carrying ptdesk's labels (`ptdesk.managed=1`,
`ptdesk.owner=you`, `ptdesk.gpus=0,1`). So every container ptdesk creates also carries
`ptdesk.seal`: an HMAC-SHA256, keyed by a secret only this PTDESK_HOME holds (keys/seal, 0600), over
its ptdesk labels AND a digest of the secrets its kind placed inside before start (the SSH host
private key, the Jupyter token: files that never change afterwards and that nobody but ptdesk and
the container has). Copying the labels of a real experiment onto another container does not copy
those secrets, so the seal does not verify there either. Only a container whose seal verifies is
adopted; anything else is listed read-only as unverified and is given nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping

from ptdesk.config import Config
from ptdesk.core.base.models import (
    LABEL_GPUS,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_OWNER,
    LABEL_WORKSPACE,
)
from ptdesk.core.base.private_files import check_private_file, ensure_private_dir, write_secret

LABEL_SEAL = "ptdesk.seal"
SEALED_LABELS = (LABEL_MANAGED, LABEL_INSTANCE, LABEL_KIND, LABEL_OWNER, LABEL_NAME, LABEL_GPUS, LABEL_WORKSPACE)
SEAL_FILE = "seal"


def seal_key(config: Config, create: bool = True) -> bytes | None:
    """This home's seal secret, made on first use (32 random bytes, 0600 in the 0700 keys folder)."""
    path = config.keys_dir / SEAL_FILE
    if not path.exists():
        if not create:
            return None
        # Written aside, then linked into place: link() fails if the file exists, so two processes
        # making it at once agree on one key (a rename would let the second silently replace it).
        staged = ensure_private_dir(path.parent) / f".{SEAL_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        write_secret(staged, secrets.token_bytes(32), 0o600)
        try:
            os.link(staged, path)
        except FileExistsError:
            pass  # another ptdesk process made it a moment ago: use theirs
        finally:
            staged.unlink()
    check_private_file(path)
    return path.read_bytes()


def secret_digest(contents: Iterable[bytes]) -> str:
    """SHA-256 over the sealed secrets, each length-prefixed so their boundaries count."""
    sha = hashlib.sha256()
    for data in contents:
        sha.update(f"{len(data)}:".encode())
        sha.update(data)
    return sha.hexdigest()


def _message(labels: Mapping[str, str], digest: str) -> bytes:
    # Exactly the labels a launch sets (the engine adds the image's own ptdesk.* labels to the
    # container's: those say what the image is, not whose the container is).
    sealed = {k: labels.get(k, "") for k in SEALED_LABELS}
    return json.dumps({"labels": sealed, "secrets": digest}, sort_keys=True, separators=(",", ":")).encode()


def seal(config: Config, labels: Mapping[str, str], digest: str) -> str:
    key = seal_key(config)
    assert key is not None
    return hmac.new(key, _message(labels, digest), hashlib.sha256).hexdigest()


def verifies(config: Config, labels: Mapping[str, str], digest: str) -> bool:
    """Does the container's seal label prove this home made it, with these very secrets inside?"""
    claimed = labels.get(LABEL_SEAL) or ""
    key = seal_key(config, create=False)
    if key is None or not claimed:
        return False
    return hmac.compare_digest(claimed, hmac.new(key, _message(labels, digest), hashlib.sha256).hexdigest())


def sealed_container(config: Config, labels: Mapping[str, str], read: Callable[[str], bytes],
                     sealed_paths: Iterable[str]) -> bool:
    """Does a container's seal label verify against this home's secret and its sealed files
    (`read(path)`: the file's bytes in that container)?"""
    if not labels.get(LABEL_SEAL):
        return False
    return verifies(config, labels, secret_digest([read(path) for path in sealed_paths]))
