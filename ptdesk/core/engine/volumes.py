"""Named volumes, and short helper containers that work on them (a mixin of the Engine,
ptdesk.core.engine.client): data a workstation keeps for everyone (the VS Code Server cache,
ptdesk.core.vscode) lives in a volume on that workstation's engine, so it works the same locally
and over ssh:// with nothing to install there.

A helper container is hardened like an experiment (no capabilities, no network, no new
privileges, bounded pids and memory) and runs one short shell command as root of its image,
which is enough to move and remove files it placed itself (root owns them; no DAC override needed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from ptdesk.core.engine.errors import translated_errors
from ptdesk.errors import PtdeskError

HELPER_LABEL = "ptdesk.helper"  # on helper containers: anyone seeing one left by a crash knows whose
HELPER_LIMITS: dict[str, Any] = {
    "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "network_mode": "none",
    "pids_limit": 64, "mem_limit": "256m", "privileged": False,
}


class Volumes:
    """The Engine's volume operations (they use its `api` and `where`)."""

    api: Any
    where: str

    def volume(self, name: str) -> dict | None:
        """The volume's inspect data, None when the engine has none of that name."""
        import docker

        with translated_errors(f"Looking up volume {name}", self.where):
            try:
                return self.api.inspect_volume(name)
            except docker.errors.NotFound:
                return None

    def create_volume(self, name: str, labels: Mapping[str, str]) -> dict:
        with translated_errors(f"Creating volume {name}", self.where):
            return self.api.create_volume(name=name, labels=dict(labels))

    def remove_volume(self, name: str) -> None:
        import docker

        with translated_errors(f"Removing volume {name}", self.where), suppress(docker.errors.NotFound):
            self.api.remove_volume(name, force=True)

    @contextmanager
    def helper(self, image: str, script: str, binds: Mapping[str, dict[str, str]],
               labels: Mapping[str, str]) -> Iterator[str]:
        """A created, not yet started helper container with `binds` mounted, to run `script` with
        /bin/sh (not the image's entrypoint): files can be placed in its volumes with
        put_archive_file before `finish` runs it. Removed afterwards, always."""
        with translated_errors(f"Creating a helper container of {image}", self.where):
            hc = self.api.create_host_config(binds=dict(binds), **HELPER_LIMITS)
            created = self.api.create_container(image=image, entrypoint=["/bin/sh", "-c"], command=[script],
                                                host_config=hc, user="0:0",
                                                labels={**labels, HELPER_LABEL: "1"}, working_dir="/",
                                                network_disabled=True, detach=True)["Id"]
        try:
            yield created
        finally:
            self.remove(created, force=True)  # type: ignore[attr-defined]

    def put_archive_file(self, container: str, dest: str, archive: Any) -> None:
        """Unpack a tar archive (a file object, streamed; not read into memory) at `dest` of a
        created container: into its volumes too (the engine mounts them for the copy)."""
        with translated_errors(f"Copying files into {container[:12]}", self.where):
            if not self.api.put_archive(container, dest, archive):
                raise PtdeskError(f"The engine refused to place files in {container[:12]}:{dest}.")

    def finish(self, container: str, timeout: float = 120.0) -> tuple[int, str]:
        """Start a helper, wait for its command to end; (exit code, its output)."""
        import requests

        with translated_errors(f"Running helper {container[:12]}", self.where):
            self.api.start(container)
            try:
                result = self.api.wait(container, timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                raise PtdeskError(f"A helper container ran longer than {timeout:.0f} s, or its engine went away.",
                                  "Try again (the helper is removed either way).") from None
            output = self.api.logs(container, stdout=True, stderr=True).decode(errors="replace")
        return int(result.get("StatusCode", -1)), output

    def run_helper(self, image: str, script: str, binds: Mapping[str, dict[str, str]],
                   labels: Mapping[str, str], timeout: float = 120.0) -> tuple[int, str]:
        with self.helper(image, script, binds, labels) as container:
            return self.finish(container, timeout)
