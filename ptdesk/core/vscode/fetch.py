"""`ptdesk vscode fetch COMMIT`: download a VS Code Server build once, where there is internet.

The download runs on the machine ptdesk runs on (for a local workstation that is the box itself),
into a temporary file, and is then added exactly as a file a person brings (checked whole, commit
compared). PTDESK_VSCODE_DOWNLOAD names a mirror instead of Microsoft's host (a URL with {commit}).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.vscode import cache
from ptdesk.core.vscode.layout import DOWNLOAD_URL, ServerBuild, check_commit
from ptdesk.errors import ConfigError, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

TIMEOUT = 30.0


def download_url(commit: str, env: dict[str, str] | None = None) -> str:
    template = (env if env is not None else os.environ).get("PTDESK_VSCODE_DOWNLOAD") or DOWNLOAD_URL
    if urllib.parse.urlsplit(template).scheme not in ("http", "https"):  # urllib would raise ValueError
        raise ConfigError(f"PTDESK_VSCODE_DOWNLOAD {template!r} is not an http(s) URL.",
                          "Name a mirror like https://mirror.example.org/vscode/{commit}/server-linux-x64.tar.gz, "
                          "or unset it to download from Microsoft's host.")
    return template.replace("{commit}", commit)


def fetch(site: Site, commit: str, progress: cache.Progress = lambda _: None) -> ServerBuild:
    check_commit(commit)
    url = download_url(commit)
    host = urllib.parse.urlsplit(url).netloc or url
    bring = f"On a machine that can, download {url} and bring the file: ptdesk vscode add FILE --commit {commit}"
    with tempfile.TemporaryDirectory(prefix="ptdesk-vscode-") as folder:
        path = Path(folder) / "vscode-server-linux-x64.tar.gz"
        progress(f"Downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response, path.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except urllib.error.HTTPError as exc:
            raise PtdeskError(f"{host} has no VS Code Server of commit {commit} (HTTP {exc.code}).",
                              "Check the commit (Help > About in VS Code); only stable builds are cached.") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PtdeskError(f"This machine cannot download from {host} ({reason}): it has no internet there.",
                              bring) from None
        return cache.add(site, path, commit, progress)
