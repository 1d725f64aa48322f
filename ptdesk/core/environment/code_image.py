"""What the code image's build takes besides images/code: the Jupyter image it is built FROM (so
its Python environment, and the fingerprint that names it, are the Jupyter experiment's), and the
team's VS Code extensions (`code_extensions` in config: .vsix files), checked before the build and
copied into the build context's extensions/ folder, where the Dockerfile installs each one.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ptdesk.config import Config
from ptdesk.core.kinds import get_kind
from ptdesk.errors import PtdeskError

TARGET = "code"
FROM_KIND = "jupyter"
EXTENSIONS_FOLDER = "extensions"


def base_of(config: Config) -> str:
    """The image the code image is built FROM: the Jupyter image this config runs."""
    return get_kind(FROM_KIND).image(config)


def extension_files(config: Config) -> dict[str, bytes]:
    """The team's .vsix files keyed by their place in the build context, each checked to be a
    VS Code extension (a zip holding extension/package.json with a name and a version)."""
    files: dict[str, bytes] = {}
    for number, path in enumerate(config.code_extensions, start=1):
        data = _read(path)
        _check(path)
        # Numbered: two files of one name in different folders both go in, in config order.
        files[f"{EXTENSIONS_FOLDER}/{number:02d}-{path.name}"] = data
    return files


def _read(path: Path) -> bytes:
    hint = "Fix the path in code_extensions (config.toml) or remove it."
    if path.suffix.lower() != ".vsix":
        raise PtdeskError(f"The extension file {path} is not a .vsix file.", hint)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PtdeskError(f"The extension file {path} (code_extensions) does not exist.", hint) from None
    except OSError as exc:
        raise PtdeskError(f"The extension file {path} cannot be read: {exc.strerror}.", hint) from None


def _check(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as vsix:
            manifest = json.loads(vsix.read("extension/package.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise PtdeskError(f"The extension file {path} is not a VS Code extension (no extension/package.json "
                          "in a .vsix zip).", "Use the .vsix file the extension's publisher ships, "
                          "or remove it from code_extensions.") from None
    if not isinstance(manifest, dict) or not manifest.get("name") or not manifest.get("version"):
        raise PtdeskError(f"The extension file {path} has no name or version in its package.json.",
                          "Use the .vsix file the extension's publisher ships, or remove it from code_extensions.")
