"""Ed25519 keys, fingerprints, authorized_keys lines and safe key files (cryptography).

Private keys are written 0600 inside 0700 folders, atomically (write a temp file, rename over),
and never logged.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.private_files import check_private_file, ensure_private_dir, write_secret
from ptdesk.errors import BadKey, NotFound

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

# cryptography (a tenth of a second to import) is imported by the functions that make or parse a key,
# not here: many modules name a fingerprint or a key file and never touch one (a listing, a --help).

# Where forwards may go: the container's own loopback only. The same list as PermitOpen in
# images/ssh/sshd_config (a test compares them); sshd compares the names literally.
PERMIT_OPEN = ("127.0.0.1:*", "localhost:*", "[::1]:*")
# Per-key options in authorized_keys: `restrict` turns everything off (forwarding, agent, X11,
# ~/.ssh/rc), then a terminal and forwarding are allowed again, to PERMIT_OPEN only; sshd_config
# still refuses remote forwards (-R), tunnels, agent and X11 whatever a key line says.
DEFAULT_KEY_OPTIONS = "restrict,pty,port-forwarding," + ",".join(f'permitopen="{p}"' for p in PERMIT_OPEN)
ACCEPTED_KEY_TYPES = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com")


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes  # OpenSSH private key format
    public_line: str  # "ssh-ed25519 AAAA... comment"
    fingerprint: str  # "SHA256:..." as ssh-keygen -lf prints it


def generate(comment: str = "") -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    line = _public_line(key, comment)
    return KeyPair(private, line, fingerprint(line))


def _public_line(key: ed25519.Ed25519PrivateKey, comment: str) -> str:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + (f" {comment}" if comment else "")


def fingerprint(public_line: str) -> str:
    """SHA256 fingerprint of an OpenSSH public key line, the string `ssh-keygen -lf` prints."""
    parts = public_line.split()
    if len(parts) < 2:
        raise BadKey("That is not an OpenSSH public key line.", "Expected 'ssh-ed25519 AAAA... comment'.")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise BadKey("The public key's base64 part is malformed.", "Copy the whole line from the .pub file.") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# What an OpenSSH key type looks like (ssh-rsa, ecdsa-sha2-nistp256, sk-ssh-ed25519@openssh.com, ...).
_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[A-Za-z0-9.@-]+")


def parse_public_key(text: str) -> str:
    """Validate a user-supplied public key; return it as one normalised line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise BadKey("A public key file must hold exactly one key line.", "Pass the .pub file of one key.")
    line = lines[0]
    kind = line.split()[0]
    if not _KEY_TYPE.fullmatch(kind):  # a note or a fingerprint, not a key: naming its first word helps nobody
        raise BadKey("That is not an OpenSSH public key line.",
                     "Pass the .pub file (one line: ssh-ed25519 AAAA... comment); make one with: ssh-keygen -t ed25519")
    if kind not in ACCEPTED_KEY_TYPES:
        raise BadKey(f"Key type {kind!r} is not accepted; ptdesk's servers take Ed25519 keys only.",
                     "Make one with: ssh-keygen -t ed25519")
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_public_key(" ".join(line.split()[:2]).encode())
    except (ValueError, UnsupportedAlgorithm):
        if kind != "sk-ssh-ed25519@openssh.com":  # cryptography cannot parse security-key types
            raise BadKey("The public key is malformed.", "Copy the whole line from the .pub file.") from None
    fingerprint(line)
    return line


def read_public_key_file(path: str | Path) -> str:
    """A person's .pub file as one validated key line; NotFound when unreadable, BadKey when malformed."""
    try:
        text = Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError):
        raise NotFound(f"The public key file {path} cannot be read.", "Pass the path of the .pub file.") from None
    if "PRIVATE KEY-----" in text:  # never echoed, never kept: only named
        raise BadKey(f"{path} is a private key; ptdesk needs the public one.",
                     f"Pass the .pub file next to it (e.g. {path}.pub), and keep the private key to yourself.")
    return parse_public_key(text)


def authorized_keys_line(public_line: str, options: str = DEFAULT_KEY_OPTIONS,
                         expiry: str | None = None) -> str:
    """One authorized_keys line; expiry is sshd's YYYYMMDDHHMM[SS]Z form, enforced by sshd itself."""
    opts = options + (f',expiry-time="{expiry}"' if expiry else "")
    return f"{opts} {public_line.strip()}"


def host_known_hosts_line(host: str, port: int, public_line: str) -> str:
    """A known_hosts line pinning a server's host key (usable as a UserKnownHostsFile)."""
    where = host if port == 22 else f"[{host}]:{port}"
    key_type, blob = public_line.split()[:2]
    return f"{where} {key_type} {blob}"








def write_keypair(folder: Path, pair: KeyPair, stem: str = "id_ed25519") -> Path:
    """Store a key pair as OpenSSH files; returns the private key path."""
    private = folder / stem
    write_secret(private, pair.private_pem, 0o600)
    write_secret(folder / f"{stem}.pub", (pair.public_line + "\n").encode(), 0o644)
    return private


def load_or_create(folder: Path, comment: str, stem: str = "id_ed25519") -> tuple[Path, str]:
    """The key pair in `folder` (made on first use): (private key path, public line).

    An existing private key is never replaced: every container made for it trusts it. A missing
    .pub is derived from it again.
    """
    private = folder / stem
    public = folder / f"{stem}.pub"
    if private.exists() and public.exists():
        check_private_file(private)
        return private, public.read_text().strip()
    # Several launches may make the first key at once: without the lock each would write its own
    # pair and the private and public files could end up from different keys.
    ensure_private_dir(folder)
    lock_fd = os.open(folder / f".{stem}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if private.exists():
            check_private_file(private)
            if not public.exists():
                write_secret(public, (public_line_of(private, comment) + "\n").encode(), 0o644)
            return private, public.read_text().strip()
        pair = generate(comment)
        return write_keypair(folder, pair, stem), pair.public_line
    finally:
        os.close(lock_fd)  # closing releases the lock


def public_line_of(private: Path, comment: str = "") -> str:
    """The OpenSSH public key line of an unencrypted OpenSSH private key file."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # TypeError: it is encrypted
        raise BadKey(f"{private} is not an unencrypted OpenSSH private key, so its public half cannot be derived.",
                     f"Put back the matching {private.name}.pub next to it.") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BadKey(f"{private} is not an Ed25519 key.", f"Put back the matching {private.name}.pub next to it.")
    return _public_line(key, comment)


