"""The one place that talks to Docker (docker SDK). Everything else asks this module.

Engine errors become PtdeskErrors here, once, so no caller has to know docker-py's exceptions.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_MANAGED
from ptdesk.core.engine.errors import explain, local_engine_address, translated_errors
from ptdesk.core.engine.files import ContainerFiles
from ptdesk.core.engine.sdk import docker_sdk
from ptdesk.core.engine.volumes import Volumes
from ptdesk.errors import NotFound, PtdeskError

if TYPE_CHECKING:
    import docker


# The PATH of every command ptdesk runs in a container: folders only root writes in ptdesk's images.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = "65534:65534"  # who runs what needs no account: owns nothing, in any image


class ClosableStream:
    """docker-py's event stream, closable from another thread on every transport: its close()
    refuses ssh:// engines ("Cancellable streams not supported"), so there the SSH channel that
    carries the stream is closed instead, which ends the blocked read the same way."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> ClosableStream:
        return self

    def __next__(self) -> Any:
        return next(self._stream)

    def close(self) -> None:
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        try:
            self._stream.close()
        except docker.errors.DockerException:
            self._stream._response.raw._fp.fp.channel.close()


class Engine(ContainerFiles, Volumes):
    """A connected Docker engine. Cheap to pass around; thread-safe for independent calls."""

    def __init__(self, client: docker.DockerClient, where: str | None = None) -> None:
        """`where`: the engine's address as errors name it (an ssh:// workstation's URL; default:
        DOCKER_HOST, else the local socket)."""
        self.client = client
        self.api = client.api
        if str(getattr(self.api, "base_url", "")).startswith("http+docker://"):
            # A socket or SSH transport: no HTTP proxy, CA bundle or .netrc can apply, so requests
            # need not read them from the environment and files again for every call (~1 ms each).
            self.api.trust_env = False
        self.where = where or local_engine_address()
        self._info: tuple[float, dict] | None = None  # (monotonic time read, the engine's info)
        self._info_ahead: threading.Thread | None = None  # a read started by read_info_ahead

    @classmethod
    def connect(cls, timeout: float = 30.0) -> Engine:
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors("Connecting to Docker"):
            # The API version is negotiated as the docker CLI does, from the one ping's Api-Version
            # header: docker-py's own "auto" asks GET /version, which the engine answers only after
            # asking containerd and runc theirs (5-20 ms, at every command's start).
            probe = docker.from_env(timeout=int(timeout), version=docker.constants.MINIMUM_DOCKER_API_VERSION)
            try:
                reply = probe.api.get(f"{probe.api.base_url}/_ping", timeout=int(timeout))
            finally:
                probe.close()
            version = reply.headers.get("Api-Version") if reply.ok else None
            client = docker.from_env(timeout=int(timeout), version=version)  # None: docker-py asks /version
        return cls(client)

    def close(self) -> None:
        self.client.close()

    # --- engine & images -------------------------------------------------------------------
    def stats_once(self, container: str) -> dict | None:
        """The engine's one-shot figures of a running container (no wait for a CPU delta); None
        when it is gone."""
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors(f"Reading the figures of {container[:12]}", self.where):
            try:
                return self.api.stats(container, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None

    def version(self) -> dict:
        with translated_errors("Asking the engine for its version", self.where):
            return self.api.version()

    def read_info_ahead(self) -> None:
        """Start reading the engine's info in a thread of its own, for a caller that needs it a
        moment later (a launch: the box's CPUs and memory, its data root): the engine's ~10 ms to
        answer then overlap the caller's work in between. A failure is left to the next info()."""
        if self._info is None and self._info_ahead is None:
            self._info_ahead = threading.Thread(target=self._read_info_quietly, name="ptdesk-engine-info", daemon=True)
            self._info_ahead.start()

    def _read_info_quietly(self) -> None:
        with suppress(PtdeskError):  # said by the info() that needs it
            self.info()

    def info(self, max_age: float = 0.0) -> dict:
        """The engine's info; `max_age` > 0: one read that long ago may answer instead (its CPUs,
        memory and data root do not change while it runs; each read costs the engine ~10 ms)."""
        ahead = self._info_ahead
        if ahead is not None and ahead is not threading.current_thread():
            ahead.join()  # a read already under way answers (or, failed, leaves this one to ask)
            self._info_ahead = None
        if max_age > 0 and self._info and time.monotonic() - self._info[0] <= max_age:
            return self._info[1]
        with translated_errors("Asking the engine for its info", self.where):
            info = self.api.info()
        self._info = (time.monotonic(), info)
        return info

    def image_exists(self, ref: str) -> bool:
        return self.image_info(ref) is not None

    def image_info(self, ref: str) -> dict | None:
        """The engine's inspect document of an image (Id, Created, Size, Config.Labels), or None."""
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors(f"Looking up image {ref}", self.where):
            try:
                return self.api.inspect_image(ref)
            except docker.errors.ImageNotFound:
                return None

    def build(self, context: bytes, tag: str, buildargs: dict[str, str],
              on_line: Callable[[str], None], labels: dict[str, str] | None = None) -> None:
        """Build from an in-memory tar context, streaming progress lines to on_line."""
        with translated_errors(f"Building {tag}", self.where):
            stream = self.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                                    buildargs=buildargs, rm=True, forcerm=True, decode=True, pull=False,
                                    labels=labels)
            try:
                for chunk in stream:
                    if "error" in chunk:
                        detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                        raise PtdeskError(f"Building {tag} failed: {detail.strip()}",
                                          "Read the build output above; for HTTPS errors pass --ca-bundle.")
                    text = chunk.get("stream") or chunk.get("status")
                    if text:
                        for line in str(text).splitlines():
                            if line.strip():
                                on_line(line.rstrip())
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()

    # --- containers ------------------------------------------------------------------------
    def create(self, *, name: str, image: str, labels: dict[str, str], host_config: dict[str, Any],
               command: list[str] | None = None, environment: dict[str, str] | None = None,
               user: str | None = None, exposed: Iterable[str] = (), hostname: str | None = None,
               entrypoint: list[str] | None = None, working_dir: str | None = None) -> str:
        with translated_errors(f"Creating container {name}", self.where):
            hc = self.api.create_host_config(**host_config)
            result = self.api.create_container(
                image=image, name=name, labels=labels, host_config=hc, command=command,
                environment=environment, user=user, ports=list(exposed), hostname=hostname,
                detach=True, entrypoint=entrypoint, working_dir=working_dir,
            )
            return result["Id"]

    def start(self, container: str) -> None:
        with translated_errors(f"Starting {container[:12]}", self.where):
            self.api.start(container)

    def stop(self, container: str, timeout: int = 10) -> None:
        with translated_errors(f"Stopping {container[:12]}", self.where):
            self.api.stop(container, timeout=timeout)

    def kill(self, container: str, signal: str) -> None:
        """Send `signal` to the container's init (which passes it on to its child); one that is
        no longer running is not an error (it ended while we decided)."""
        import docker
        with translated_errors(f"Signalling {container[:12]}", self.where):
            try:
                self.api.kill(container, signal=signal)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # gone, or not running
                    raise

    def remove(self, container: str, force: bool = True) -> None:
        """Remove a container; one that is already gone is not an error."""
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors(f"Removing {container[:12]}", self.where):
            try:
                self.api.remove_container(container, force=force, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if "is already in progress" in explain(exc):
                    return
                raise

    def inspect(self, container: str) -> dict:
        with translated_errors(f"Inspecting {container[:12] if len(container) > 12 else container}", self.where):
            return self.api.inspect_container(container)

    def try_inspect(self, container: str) -> dict | None:
        try:
            return self.inspect(container)
        except NotFound:
            return None

    def is_running(self, container: str) -> bool:
        """Is the container running right now (False once it is gone)?"""
        data = self.try_inspect(container)
        return bool(data and data["State"].get("Running"))

    def list_managed(self, instance: str, all: bool = True) -> list[dict]:
        """Managed containers of one ptdesk instance: one request, no per-container inspect."""
        filters = {"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        with translated_errors("Listing containers", self.where):
            return self.api.containers(all=all, filters=filters)

    def labelled(self, label: str) -> list[dict]:
        """Every container (of any instance) carrying `label`: one request."""
        with translated_errors("Listing containers", self.where):
            return self.api.containers(all=True, filters={"label": label})

    def published_port(self, container: str, container_port: str) -> tuple[str, int] | None:
        data = self.inspect(container)
        bindings = (data.get("NetworkSettings", {}).get("Ports") or {}).get(container_port) or []
        for binding in bindings:
            if binding.get("HostPort"):
                return binding.get("HostIp", ""), int(binding["HostPort"])
        return None

    def exec(self, container: str, cmd: list[str], user: str = "root") -> tuple[int, bytes]:
        """Run `cmd` in a running container. Always from / with the system folders as PATH: the
        container's working directory (/workspace) and anything on its PATH may be written by
        the people in it, and a program or module found there would run as `user`."""
        with translated_errors(f"Running a command in {container[:12]}", self.where):
            exec_id = self.api.exec_create(container, cmd, user=user, stdout=True, stderr=True,
                                           environment={"PATH": SAFE_PATH}, workdir="/")["Id"]
            output = self.api.exec_start(exec_id)
            rc = self.api.exec_inspect(exec_id).get("ExitCode")
            return (rc if rc is not None else -1), output

    def top_pids(self, container: str) -> list[int]:
        """Host PIDs of the processes in a running container."""
        with translated_errors(f"Listing processes of {container[:12]}", self.where):
            top = self.api.top(container, ps_args="-eo pid")
        return [int(row[0]) for row in top.get("Processes") or []]

    def top_uids(self, container: str) -> set[int]:
        """The uids that processes of a running container run as (no exec: the engine's ps)."""
        with translated_errors(f"Listing processes of {container[:12]}", self.where):
            top = self.api.top(container, ps_args="-eo pid,uid")
        return {int(row[1]) for row in top.get("Processes") or [] if len(row) > 1 and str(row[1]).isdigit()}

    # --- networks --------------------------------------------------------------------------
    def networks_named(self, name: str) -> list[dict]:
        """Networks whose name is exactly `name` (the engine's filter also matches parts of names)."""
        with translated_errors("Listing networks", self.where):
            return [n for n in self.api.networks(names=[name]) if n.get("Name") == name]

    def create_network(self, name: str, options: dict[str, str], labels: dict[str, str]) -> str | None:
        """A new bridge network's id; None when the engine says one of that name exists already."""
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors(f"Creating network {name}", self.where):
            try:
                return self.api.create_network(name, driver="bridge", options=options, labels=labels,
                                               check_duplicate=True)["Id"]
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return None
                raise

    def remove_network(self, network: str) -> None:
        docker = docker_sdk()  # the SDK is imported by the first call that talks to an engine
        with translated_errors(f"Removing network {network[:12]}", self.where):
            try:
                self.api.remove_network(network)
            except docker.errors.NotFound:
                return

    # --- streams ---------------------------------------------------------------------------
    def logs(self, container: str, tail: int | str = "all", follow: bool = False,
             since: float | None = None) -> Iterator[bytes]:
        """Raw log frames (not lines); the caller splits lines and must close the generator."""
        with translated_errors(f"Reading logs of {container[:12]}", self.where):
            return self.api.logs(container, stream=True, follow=follow, tail=tail,
                                 since=int(since) if since else None)

    def events(self, instance: str, since: float | None = None):
        """Decoded container events of one instance's managed containers (a closable generator)."""
        filters = {"type": ["container"], "label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance}"]}
        with translated_errors("Following engine events", self.where):
            return ClosableStream(self.api.events(since=since, filters=filters, decode=True))

    # --- attached helpers (a workstation's GPU sampler) --------------------------------------
    def run_attached(self, *, name: str, image: str, labels: dict[str, str], host_config: dict[str, Any],
                     environment: dict[str, str] | None = None, user: str | None = None) -> tuple[str, Any]:
        """Create and start a container whose stdin stays open exactly as long as the returned socket
        (StdinOnce): closing it, or losing the connection, ends the container's input. Returns
        (id, socket); read its output with attached_output and close the socket when done."""
        with translated_errors(f"Starting {name}", self.where):
            hc = self.api.create_host_config(**host_config)
            created = self.api.create_container(image=image, name=name, labels=labels, host_config=hc,
                                                # not detached + stdin_open: docker-py sets StdinOnce
                                                environment=environment, user=user, stdin_open=True,
                                                detach=False)["Id"]
            try:
                sock = self.api.attach_socket(created, params={"stdin": 1, "stdout": 1, "stream": 1})
                self.api.start(created)
            except BaseException:
                self.remove(created)
                raise
        return created, sock

    def attached_output(self, sock: Any) -> Iterator[bytes]:
        """The stdout payloads of an attached (non-tty) container, until it ends or the socket closes."""
        from docker.utils.socket import frames_iter

        with translated_errors("Reading an attached container", self.where):
            for stream, data in frames_iter(sock, tty=False):
                if stream == 1:
                    yield data
    # --- images as files and scratch containers (ptdesk.core.environment.recorded, image_archive) -------------
    @contextmanager
    def scratch_container(self, image: str) -> Iterator[str]:
        """A created, never started container of `image` (to read files out of the image), removed after."""
        with translated_errors(f"Reading from image {image[:19]}", self.where):
            container = self.api.create_container(image=image, command=["true"], labels={"ptdesk.scratch": "1"},
                                                  network_disabled=True)["Id"]
        try:
            yield container
        finally:
            self.remove(container, force=True)

    def save_images(self, refs: Iterable[str]) -> Iterator[bytes]:
        """`docker save REF...` as a stream of chunks: one archive, layers shared between images once."""
        with translated_errors("Saving images", self.where):
            response = self.api._get(self.api._url("/images/get"), params={"names": list(refs)}, stream=True)
            self.api._raise_for_status(response)
            return response.iter_content(chunk_size=1 << 20)

    def load_images(self, stream: Any) -> list[str]:
        """`docker load` from a file object; returns the engine's messages (Loaded image: ...)."""
        with translated_errors("Loading images", self.where):
            messages = []
            for chunk in self.api.load_image(stream):
                if "error" in chunk:
                    raise PtdeskError(f"The engine refused the images: {chunk['error']}.",
                                      "Check the file with: ptdesk images load FILE (it verifies before loading).")
                if chunk.get("stream"):
                    messages.append(str(chunk["stream"]).strip())
            return messages

    # --- re-creating a container (ptdesk.core.sharing.recreate) -----------------------------------------
    def create_from_config(self, name: str, config: dict[str, Any]) -> str:
        """Create a container from an engine-shaped config (an inspect's Config plus HostConfig)."""
        with translated_errors(f"Creating {name}", self.where):
            return self.api.create_container_from_config(config, name)["Id"]

    def rename(self, container: str, name: str) -> None:
        with translated_errors(f"Renaming {container[:12]}", self.where):
            self.api.rename(container, name)
