"""What `ptdesk vscode status` says: the builds cached on a workstation, which SSH experiments see
them, and which commits clients asked for that are not cached.

A VS Code client that connected and found no server of its commit leaves that commit in the
person's `~/.vscode-server` whether its download then worked or not (`.C.log`, `.C.token`,
`code-C`, `vscode-cli-C.tar.gz`, `bin/C/`, `cli/servers/Stable-C/`): every 40-digit hex name there is
a commit somebody's client asked for. Homes are private (0700), so each is read as its own person
(setpriv, which the SSH image's sshd capabilities allow), and only names are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ptdesk.core.vscode.cache import Cached, cached, volume_name
from ptdesk.core.vscode.layout import COMMIT, DATA_FOLDER, MOUNT
from ptdesk.errors import PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

_LIST_HOMES = (
    "for h in /home/*; do [ -d \"$h\" ] || continue; u=$(stat -c %u \"$h\"); [ \"$u\" -ne 0 ] || continue; "
    "setpriv --reuid=\"$u\" --regid=65534 --clear-groups /bin/sh -c "
    f"'cd \"$1/{DATA_FOLDER}\" 2>/dev/null && ls -a . bin cli/servers 2>/dev/null' sh \"$h\"; done; true"
)


@dataclass(frozen=True)
class Asked:
    commit: str
    experiments: tuple[str, ...]  # whose homes show a client asked for it


@dataclass(frozen=True)
class CacheStatus:
    workstation: str
    volume: str
    cached: tuple[Cached, ...]
    missing: tuple[Asked, ...]  # asked for by clients, not cached
    mounted: tuple[str, ...]  # SSH experiments that see the cache
    not_mounted: tuple[str, ...] = ()  # SSH experiments created before the cache existed
    unread: tuple[str, ...] = field(default=())  # running ones whose homes could not be read

    def to_json(self) -> dict:
        return {"workstation": self.workstation, "volume": self.volume, "mount": MOUNT,
                "cached": [{"commit": c.commit, "version": c.version, "size": c.size} for c in self.cached],
                "missing": [{"commit": a.commit, "experiments": list(a.experiments)} for a in self.missing],
                "mounted_in": list(self.mounted), "not_mounted_in": list(self.not_mounted),
                "homes_unread": list(self.unread)}


def status(site: Site) -> CacheStatus:
    builds = tuple(cached(site))
    have = {c.commit for c in builds}
    asked: dict[str, list[str]] = {}
    mounted, not_mounted, unread = [], [], []
    for record in site.store.experiments():
        if record.kind != "ssh" or not record.container_id:
            continue
        info = site.engine.try_inspect(record.container_id)
        if info is None:
            continue
        sees = any(m.get("Destination") == MOUNT for m in info.get("Mounts") or [])
        (mounted if sees else not_mounted).append(record.name)
        if not (info.get("State") or {}).get("Running"):
            continue
        try:
            rc, out = site.engine.exec(record.container_id, ["/bin/sh", "-c", _LIST_HOMES])
        except PtdeskError:
            rc, out = 1, b""
        if rc != 0:
            unread.append(record.name)
            continue
        for commit in sorted(set(COMMIT.findall(out.decode(errors="replace")))):
            asked.setdefault(commit, []).append(record.name)
    missing = tuple(Asked(c, tuple(names)) for c, names in sorted(asked.items()) if c not in have)
    return CacheStatus(site.name, volume_name(site), builds, missing, tuple(mounted), tuple(not_mounted), tuple(unread))
