"""The VS Code Server cache of one workstation: a Docker volume on its engine (so an ssh://
workstation keeps its own, with nothing installed there), laid out as `~/.vscode-server` is
(ptdesk.core.vscode.layout), mounted read-only into every SSH experiment created while it exists.

Adding is all or nothing: the tarball is read and checked whole on this machine first, the space
where the volume lives is checked, the build is copied into a staging folder of the volume, and one
`mv` makes it appear under its commit; anything that fails on the way removes the staging folder.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.base.names import container_name
from ptdesk.core.base.units import human_bytes
from ptdesk.core.engine.client import NOBODY
from ptdesk.core.vscode.layout import (
    MOUNT,
    ServerBuild,
    check_commit,
    inspect_tarball,
    is_commit,
    repack,
    servers_folder,
)
from ptdesk.errors import ImageMissing, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

VOLUME_LABEL = "ptdesk.vscode-cache"
AT = "/cache"  # where helper containers mount the volume
STAGING = ".incoming"
# Room kept free beyond the build itself (the filesystem holds the engine's images and containers too).
SPARE = 256 * 1024**2
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Cached:
    commit: str
    version: str
    size: int  # bytes on the workstation


def volume_name(site: Site) -> str:
    return container_name(site.config, "vscode-server")


def binds(site: Site) -> dict[str, dict[str, str]]:
    """The read-only mount of the cache for an SSH experiment being created; none while the
    workstation has no cache (no volume is made just by launching)."""
    name = volume_name(site)
    return {name: {"bind": MOUNT, "mode": "ro"}} if site.engine.volume(name) else {}


def add(site: Site, tarball: Path, commit: str | None = None, progress: Progress = lambda _: None) -> ServerBuild:
    progress(f"Checking {tarball}")
    build = inspect_tarball(tarball, commit)
    if build.commit in {c.commit for c in cached(site)}:
        return build
    made = _ensure_volume(site)
    try:
        progress("Checking the space where the cache lives")
        check_space(site.name, _free_bytes(site), build.size)
        _place(site, build, progress)
    except BaseException:
        if made:  # a cache made for this build only goes with it: nothing is left behind
            with contextlib.suppress(PtdeskError):
                site.engine.remove_volume(volume_name(site))
        raise
    return build


def _place(site: Site, build: ServerBuild, progress: Progress) -> None:
    token = secrets.token_hex(8)
    staging = f"{STAGING}/{token}"
    final = f"{AT}/{servers_folder(build.commit)}"
    # One mv: the build appears under its commit whole, or not at all; the legacy bin/<commit> is a
    # relative link inside the volume, so it resolves wherever the volume is mounted.
    # Another add of the same commit that finished first: its copy stays, this one goes.
    finish = (f"set -e; if [ -e {final} ]; then rm -rf {AT}/{staging}; exit 0; fi; "
              f"mkdir -p {AT}/cli/servers {AT}/bin; mv {AT}/{staging} {final}; "
              f"ln -sfn ../{servers_folder(build.commit)}/server {AT}/bin/{build.commit}")
    done = False
    try:
        with site.engine.helper(_image(site), finish, _rw(site), _labels(site)) as helper:
            progress(f"Copying VS Code Server {build.version} ({build.commit[:12]}) to {site.name}")
            with tempfile.TemporaryFile(prefix="ptdesk-vscode-") as packed:
                repack(build, f"{staging}/server", packed)
                site.engine.put_archive_file(helper, AT, packed)
            rc, output = site.engine.finish(helper)
            if rc != 0:
                raise PtdeskError(f"Placing the build in the cache failed ({output.strip() or f'exit {rc}'}).")
            done = True
    finally:
        if not done:
            with contextlib.suppress(PtdeskError):
                _sh(site, f"rm -rf {AT}/{staging}")


def remove(site: Site, commit: str) -> None:
    check_commit(commit, "See the cached ones with: ptdesk vscode status")
    if commit not in {c.commit for c in cached(site)}:
        raise NotFound(f"No VS Code Server of commit {commit} is cached on {site.name}.",
                       "See the cached ones with: ptdesk vscode status")
    # Out of the way by rename first: a login linking at that moment sees it gone, not half gone.
    _sh(site, f"set -e; rm -f {AT}/bin/{commit}; mkdir -p {AT}/{STAGING}; "
              f"mv {AT}/{servers_folder(commit)} {AT}/{STAGING}/rm-{commit}; rm -rf {AT}/{STAGING}/rm-{commit}")


def cached(site: Site) -> list[Cached]:
    """The builds in the cache, by commit; none when the workstation has no cache."""
    if not site.engine.volume(volume_name(site)):
        return []
    return _parse_listing(_sh(site, _listing(AT)))


def seen_in(site: Site, container_id: str) -> tuple[Cached, ...] | None:
    """The builds a running SSH experiment sees, read inside it (as nobody: the cache is readable by
    all); None when it has no cache mounted, or cannot be asked."""
    try:
        rc, out = site.engine.exec(container_id, ["/bin/sh", "-c", f"[ -d {MOUNT} ] && {{ {_listing(MOUNT)}; }}"],
                                   user=NOBODY)
    except PtdeskError:
        return None
    return tuple(_parse_listing(out.decode(errors="replace"))) if rc == 0 else None


def _listing(root: str) -> str:
    """Shell: one line `COMMIT VERSION KIB` per build under `root` (the cache's layout)."""
    return (f"for d in {root}/cli/servers/Stable-*/server; do [ -f \"$d/product.json\" ] || continue; "
            "c=${d%/server}; v=$(sed -n 's/.*\"version\": *\"\\([^\"]*\\)\".*/\\1/p' \"$d/product.json\" "
            "| head -n 1); echo \"${c##*/Stable-} ${v:-?} $(du -sk \"$d\" | cut -f1)\"; done; true")


def _parse_listing(out: str) -> list[Cached]:
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and is_commit(parts[0]) and parts[2].isdigit():
            found.append(Cached(parts[0], parts[1], int(parts[2]) * 1024))
    return sorted(found, key=lambda c: c.commit)


def check_space(where: str, free: int, needed: int) -> None:
    if free < needed + SPARE:
        raise PtdeskError(f"Workstation {where} has {human_bytes(free)} free where its VS Code Server cache lives, "
                          f"and this build needs {human_bytes(needed)} (plus {human_bytes(SPARE)} kept free).",
                          "Free space on that disk, or remove an older build: ptdesk vscode rm COMMIT")


def _free_bytes(site: Site) -> int:
    out = _sh(site, f"df -Pk {AT} | tail -n 1")
    fields = out.split()  # df -P: filesystem, 1024-blocks, used, available, capacity, mounted on
    if len(fields) != 6 or not fields[3].isdigit():
        raise PtdeskError(f"Could not tell the free space on {site.name} (df said {out.strip()!r}).")
    return int(fields[3]) * 1024


def _sh(site: Site, script: str) -> str:
    rc, output = site.engine.run_helper(_image(site), script, _rw(site), _labels(site))
    if rc != 0:
        raise PtdeskError(f"A command on {site.name}'s VS Code Server cache failed ({output.strip() or f'exit {rc}'}).")
    return output


def _ensure_volume(site: Site) -> bool:
    """True when the volume was made now."""
    name = volume_name(site)
    found = site.engine.volume(name)
    if found is None:
        site.engine.create_volume(name, _labels(site))
        return True
    if (found.get("Labels") or {}).get(VOLUME_LABEL) != "1":
        raise PtdeskError(f"The volume {name} on {site.name} is not ptdesk's VS Code Server cache.",
                          f"Remove or rename it (docker volume rm {name}) if nothing needs it.")
    return False


def _rw(site: Site) -> dict[str, dict[str, str]]:
    return {volume_name(site): {"bind": AT, "mode": "rw"}}


def _labels(site: Site) -> dict[str, str]:
    return {VOLUME_LABEL: "1", LABEL_INSTANCE: site.config.instance}


def _image(site: Site) -> str:
    """Helpers run in the SSH image: the one every workstation with SSH experiments has (the
    image SshKind.image names; the kinds sit above this package, which they mount)."""
    image = site.config.images.get("ssh") or "ptdesk/ssh:latest"
    if not site.engine.image_exists(image):
        raise ImageMissing(f"Image {image} is not on {site.name}: ptdesk's VS Code cache works with it.",
                           "Build it with: ptdesk images build ssh")
    return image
