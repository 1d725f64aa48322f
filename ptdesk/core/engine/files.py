"""Files into and out of containers: secrets placed before start, small files read back bounded,
a writable layer copied container to container (a mixin of the Engine, ptdesk.core.engine.client)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ptdesk.core.engine.errors import translated_errors
from ptdesk.errors import PtdeskError


@dataclass(frozen=True)
class FileSpec:
    """A file to place in a container with put_archive (owner and mode travel in the tar header)."""

    name: str  # path relative to the archive's destination folder
    data: bytes
    mode: int = 0o600
    uid: int = 0
    gid: int = 0


# What ptdesk reads from containers is small (keys, tokens, authorized_keys): bounded, so a container
# cannot make ptdesk read gigabytes.
READ_FILE_LIMIT = 256 * 1024
TAR_OVERHEAD = 16 * 1024
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


def _check_stat(where: str, stat: dict | None, max_bytes: int, hint: str) -> None:
    stat = stat or {}
    if stat.get("linkTarget") or int(stat.get("mode") or 0) & _GO_MODE_TYPE:
        raise PtdeskError(f"{where} is not a regular file (a link, folder or device).", hint)
    if int(stat.get("size") or 0) > max_bytes:
        raise PtdeskError(f"{where} is larger than {max_bytes} bytes.", hint)


class ContainerFiles:
    """The Engine's file operations (they use its `api` and `where`)."""

    api: Any
    where: str

    def put_files(self, container: str, dest: str, files: Iterable[FileSpec]) -> None:
        """Place files with put_archive; works on created-but-not-started and stopped containers."""
        buffer = io.BytesIO()
        now = time.time()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for spec in files:
                info = tarfile.TarInfo(spec.name)
                info.size, info.mode, info.uid, info.gid, info.mtime = (
                    len(spec.data), spec.mode, spec.uid, spec.gid, now)
                tar.addfile(info, io.BytesIO(spec.data))
        with translated_errors(f"Placing files in {container[:12]}", self.where):
            if not self.api.put_archive(container, dest, buffer.getvalue()):
                raise PtdeskError(f"The engine refused to place files in {container[:12]}:{dest}.")

    def put_archive(self, container: str, dest: str, archive: BinaryIO) -> None:
        """Extract a tar (a file, streamed: a code snapshot can be large) into the container at `dest`."""
        with translated_errors(f"Placing files in {container[:12]}", self.where):
            if not self.api.put_archive(container, dest, archive):
                raise PtdeskError(f"The engine refused to place files in {container[:12]}:{dest}.")

    def read_file(self, container: str, path: str, max_bytes: int = READ_FILE_LIMIT) -> bytes:
        """A regular file's bytes, at most `max_bytes` of them.

        Whoever made the container chose what lies at `path`: a symlink (which tarfile would try
        to resolve inside the archive, and fail on), a device, or a file of gigabytes. Each is a
        PtdeskError saying so, decided from the engine's stat before anything is read, and the
        archive itself is read only up to the limit.
        """
        where = f"{path} in {container[:12]}"
        hint = f"ptdesk does not make it so: remove the container with docker rm -f {container[:12]}"
        with translated_errors(f"Reading {where}", self.where):
            stream, stat = self.api.get_archive(container, path, chunk_size=64 * 1024)
            try:
                _check_stat(where, stat, max_bytes, hint)
                data = bytearray()
                for chunk in stream:  # the tar adds headers and padding: a few blocks at most
                    data += chunk
                    if len(data) > max_bytes + TAR_OVERHEAD:
                        raise PtdeskError(f"{where} is larger than {max_bytes} bytes.", hint)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        try:
            with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
                member = tar.next()
                if member is None or not member.isreg() or member.size > max_bytes:
                    raise PtdeskError(f"{where} is not a regular file of at most {max_bytes} bytes.",
                                      hint)
                extracted = tar.extractfile(member)
                return extracted.read(max_bytes) if extracted else b""
        except tarfile.TarError as exc:
            raise PtdeskError(f"{where} could not be read ({exc}).", hint) from None

    def read_folder(self, container: str, path: str, max_bytes: int) -> dict[str, bytes]:
        """The regular files under folder `path` (names relative to it), at most `max_bytes` in
        all (PtdeskError beyond); links, devices and folders are skipped. NotFound without it."""
        where = f"{path} in {container[:12]}"
        with translated_errors(f"Reading {where}", self.where):
            stream, _ = self.api.get_archive(container, path, chunk_size=1 << 20)
            try:
                data = bytearray()
                for chunk in stream:
                    data += chunk
                    if len(data) > max_bytes + TAR_OVERHEAD:
                        raise PtdeskError(f"{where} is larger than {max_bytes} bytes.")
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        found: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
                for member in tar:
                    extracted = tar.extractfile(member) if member.isreg() else None
                    if extracted is not None:
                        found[member.name.split("/", 1)[-1]] = extracted.read(max_bytes)
        except tarfile.TarError as exc:
            raise PtdeskError(f"{where} could not be read ({exc}).") from None
        return found

    def changes(self, container: str) -> list[dict]:
        """`docker diff`: what differs in the container's writable layer (Path, Kind 0/1/2)."""
        with translated_errors(f"Reading the changes of {container[:12]}", self.where):
            return self.api.diff(container) or []

    def copy_path(self, source: str, target: str, path: str, parent: str, files_only: bool = False) -> bool:
        """Stream `path` of `source` (a tar, owners and modes kept) into `parent` of `target`;
        with `files_only`, a folder is not copied (False)."""
        with translated_errors(f"Copying {path} from {source[:12]}", self.where):
            stream, stat = self.api.get_archive(source, path, chunk_size=1 << 20)
            try:
                if files_only and int((stat or {}).get("mode") or 0) & (1 << 31):  # Go's os.ModeDir
                    return False
                if not self.api.put_archive(target, parent, stream):
                    raise PtdeskError(f"The engine refused to place {path} in {target[:12]}.")
                return True
            finally:
                stream.close()
