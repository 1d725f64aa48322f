"""Helpers for tests/e2e/test_accounts.py: people logging in with OpenSSH as they really would."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.engine.client import Engine
from ptdesk.core.gpu.procmap import container_from_cgroup

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk

DETACH = "setsid nohup sh -c 'while true; do sleep 5; done' >/dev/null 2>&1 </dev/null &"


@dataclass(frozen=True)
class Person:
    """A collaborator as they hold their access: the exported bundle's ssh_config."""

    name: str
    config: Path

    def ssh(self, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-F", str(self.config), "-o", "BatchMode=yes", host, command],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def session(self, host: str, command: str) -> subprocess.Popen[str]:
        """An open login running `command` (what a person leaves running in a terminal)."""
        return subprocess.Popen(["ssh", "-F", str(self.config), "-o", "BatchMode=yes", host, command],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)


def person(desk: Ptdesk, name: str, folder: Path, *experiments: str, add_args: tuple[str, ...] = ()) -> Person:
    desk.ok("collab", "add", name, *add_args)
    for experiment in experiments:
        desk.ok("grant", name, experiment)
    out = folder / f"{name}-bundle"
    desk.ok("collab", "export", name, out, "--dest", out)
    return Person(name, out / "ssh_config")


def owner_ssh(desk: Ptdesk, experiment: dict, command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """The owner logging in to their own account with the real OpenSSH client."""
    ssh = experiment["ssh"]
    known = folder / f"known-{experiment['name']}"
    known.write_text(ssh["known_hosts"] + "\n")
    return subprocess.run(["ssh", "-i", ssh["identity_file"], "-p", str(ssh["port"]), "-o", "IdentitiesOnly=yes",
                           "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                           "-o", "BatchMode=yes", f"{ssh['user']}@{ssh['host']}", command],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def account_pids(engine: Engine, container: str, account: str) -> list[int]:
    """Live (non-zombie) processes of an account, as ps in the container sees them."""
    rc, out = engine.exec(container, ["ps", "-o", "pid=,stat=", "-u", account])
    if rc != 0:
        return []
    return [int(f[0]) for f in (line.split() for line in out.decode().splitlines()) if f and not f[1].startswith("Z")]


def host_pids(container: str, uid: int, comm: str) -> list[int]:
    """Host PIDs of the processes named `comm` that `uid` runs in `container` (what NVML reports)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            cgroup = Path(f"/proc/{name}/cgroup").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ref = container_from_cgroup(cgroup)
        if ref and ref.id == container and fields["Name"].strip() == comm and \
                int(fields["Uid"].split()[0]) == uid:
            found.append(int(name))
    return found


@dataclass
class Watcher:
    """`ptdesk watch --json` as a service runs it, its lines collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str]) -> Watcher:
        import sys

        script = Path(sys.executable).parent / "ptdesk"
        process = subprocess.Popen([str(script), "watch", "--json"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        watcher = cls(process)
        threading.Thread(target=watcher._read, daemon=True).start()
        return watcher

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
