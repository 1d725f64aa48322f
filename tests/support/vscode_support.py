"""Stand-in VS Code Server tarballs with the real layout (a real build cannot be downloaded here).

Laid out as vscode-server-linux-x64.tar.gz from update.code.visualstudio.com is: one top folder
`vscode-server-linux-x64/`, product.json with the fields Remote-SSH and the server read (commit,
quality, serverDataFolderName, serverApplicationName, version), package.json, `bin/code-server`
with the real launcher's text (ROOT from `readlink -f "$0"`, then `"$ROOT/node" … out/server-main.js`),
and `node` as a stub that says how it was started, so a login can prove the launcher ran from the
cache.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

TOP = "vscode-server-linux-x64"

# The launcher as VS Code ships it (resources/server/bin/code-server-linux.sh, patchelf part left out).
LAUNCHER = """#!/usr/bin/env sh
#
# Copyright (c) Microsoft Corporation. All rights reserved.
#

case "$1" in
\t--inspect*) INSPECT="$1"; shift;;
esac

ROOT="$(dirname "$(dirname "$(readlink -f "$0")")")"

"$ROOT/node" ${INSPECT:-} "$ROOT/out/server-main.js" "$@"
"""
NODE_STUB = """#!/bin/sh
echo "stand-in node ran $1 with: $2"
"""


def product(commit: str, **changes: object) -> dict:
    return {"nameShort": "Code", "nameLong": "Visual Studio Code", "applicationName": "code",
            "serverApplicationName": "code-server", "serverDataFolderName": ".vscode-server",
            "quality": "stable", "version": "1.107.0", "commit": commit, "date": "2026-11-12T00:00:00.000Z",
            **changes}


def server_tarball(path: Path, commit: str, *, product_changes: dict | None = None,
                   drop: str | None = None, top: str = TOP, padding: int = 64 * 1024) -> Path:
    """Write a stand-in build; `drop` leaves one required file out, `padding` makes it big enough
    that cutting it short is noticed mid-way (as a cut-off download is)."""
    files: dict[str, tuple[bytes, int]] = {
        "product.json": (json.dumps(product(commit, **(product_changes or {})), indent="\t").encode(), 0o644),
        "package.json": (b'{"name": "vscode-reh", "version": "1.107.0"}', 0o644),
        "node": (NODE_STUB.encode(), 0o755),
        "bin/code-server": (LAUNCHER.encode(), 0o755),
        "out/server-main.js": (b"// the server\n" + os.urandom(padding), 0o644),
        "LICENSE": (b"stand-in\n", 0o644),
    }
    now = time.time()
    with tarfile.open(path, "w:gz") as tar:
        for folder in ("", "/bin", "/out"):
            info = tarfile.TarInfo(top + folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
        for name, (data, mode) in files.items():
            if name == drop:
                continue
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    return path


def truncated(source: Path, path: Path) -> Path:
    """The first part of a download that was cut off."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path
