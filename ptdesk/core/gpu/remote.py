"""GPU truth of a remote workstation, without ptdesk installed there: its sampler container.

ptdesk starts a small read-only container (images/sampler; no capabilities, no network, host PID
namespace to map PIDs to containers, GPUs visible) attached over the workstation's existing SSH
connection, and reads the JSON lines it writes (ptdesk.core.gpu.wire). No extra port, no extra
credential: it is the engine's own attach stream. Closing the attach socket ends the sampler's stdin,
so it exits and the engine removes it; a ptdesk that dies does the same by losing its connection.
Names (experiment, owner) are filled here from the engine's labels, as locally.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ptdesk.core.base.gpu_models import GpuInventory, GpuSnapshot
from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_NAME, LABEL_OWNER
from ptdesk.core.engine.sdk import docker_sdk
from ptdesk.core.gpu import wire
from ptdesk.core.gpu.nvml import inventory_of
from ptdesk.core.gpu.sampler_image import sampler_tag
from ptdesk.errors import GpuUnavailable, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.engine.client import Engine
    from ptdesk.core.site import Site

LABEL_SAMPLER = "ptdesk.sampler"
FIRST_SAMPLE_TIMEOUT = 10.0  # container start + NVML init (~1.5 s without persistence mode)


def sampler_host_config(gpus: bool) -> dict[str, Any]:
    """Nothing but what reading NVML and /proc/<pid>/cgroup needs."""
    docker = docker_sdk()

    config: dict[str, Any] = {
        "auto_remove": True, "read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "network_mode": "none", "pid_mode": "host", "mem_limit": "128m", "pids_limit": 16, "nano_cpus": 250_000_000,
    }
    if gpus:
        config["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu", "utility"]])]
    return config


class SamplerFeed:
    """One attached sampler container and the latest snapshot it sent (a background reader)."""

    def __init__(self, engine: Engine, instance: str, image: str) -> None:
        name = f"ptdesk-{instance}-gpu-sampler-{secrets.token_hex(3)}"
        labels = {LABEL_SAMPLER: "1", LABEL_INSTANCE: instance}
        try:
            self.container, self._sock = engine.run_attached(name=name, image=image, labels=labels,
                                                             host_config=sampler_host_config(True), user="65534:65534")
            self.gpu_runtime = True
        except GpuUnavailable:  # no NVIDIA runtime there: the sampler still runs and says so itself
            self.container, self._sock = engine.run_attached(name=name, image=image, labels=labels,
                                                             host_config=sampler_host_config(False), user="65534:65534")
            self.gpu_runtime = False
        self._engine = engine
        self.latest: GpuSnapshot | None = None
        self.error: str | None = None
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"gpu-sampler {name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        lines = wire.LineReader()
        try:
            for chunk in self._engine.attached_output(self._sock):
                for line in lines.feed(chunk):
                    # Another machine's text: one bad line is skipped, never the end of the feed.
                    with contextlib.suppress(ValueError):
                        self._publish(wire.decode(line))
        except PtdeskError as exc:
            self.error = exc.message
        except (OSError, ValueError):
            pass  # close() shut the socket under the reader: the feed ends as below
        finally:
            with self._arrived:
                self.error = self.error or "the GPU sampler stopped"
                self._arrived.notify_all()

    def _publish(self, snapshot: GpuSnapshot) -> None:
        with self._arrived:
            self.latest = snapshot
            self._arrived.notify_all()

    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def wait_first(self, timeout: float) -> GpuSnapshot | None:
        with self._arrived:
            self._arrived.wait_for(lambda: self.latest is not None or not self.alive or self.error, timeout)
            return self.latest

    def close(self) -> None:
        """End the sampler: its stdin closes with the attach connection, it exits, the engine removes it."""
        raw = getattr(self._sock, "_sock", self._sock)
        with contextlib.suppress(Exception):
            # close() alone leaves a local socket open while the reader's file object still holds it.
            raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            raw.close()
        with contextlib.suppress(Exception):
            self._sock.close()


class RemoteGpus:
    """The GpuSampler interface (sample, inventory, close) for a workstation reached over SSH."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self._feed: SamplerFeed | None = None
        self._lock = threading.Lock()
        self.last: GpuSnapshot | None = None

    def _unavailable(self, reason: str) -> GpuSnapshot:
        """Why there is no sample, naming the workstation once ("box: ..."; an engine error from
        the fleet already says "Workstation box: ...")."""
        reason = reason.removeprefix(f"Workstation {self._site.name}: ")
        return GpuSnapshot(available=False, reason=f"{self._site.name}: {reason}", driver=None, taken_at=time.time())

    def sample(self) -> GpuSnapshot:
        """The newest sample (waiting for the first one); a value, never an exception."""
        with self._lock:
            try:
                if self._feed is None or not self._feed.alive:
                    self._feed = SamplerFeed(self._site.engine, self._site.config.instance,
                                             sampler_tag(self._site.config))
                feed = self._feed
            except PtdeskError as exc:
                if "No such image" in exc.message:  # not a driver problem: ptdesk's sampler was never built there
                    return self._unavailable(f"its GPU sampler image is not there; build it with: ptdesk images "
                                             f"build sampler --on {self._site.name}")
                return self._unavailable(exc.message)
        snapshot = feed.wait_first(FIRST_SAMPLE_TIMEOUT)
        if snapshot is None:
            return self._unavailable(feed.error or "its GPU sampler sent nothing in time")
        if not snapshot.available:  # "this machine" in the sampler's sentence is that workstation
            snapshot = replace(snapshot, reason=f"{self._site.name}: {snapshot.reason}")
        self.last = name_processes(snapshot, self._site.engine, self._site.config.instance)
        return self.last

    def inventory(self, snapshot: GpuSnapshot | None = None) -> GpuInventory:
        return inventory_of(snapshot or self.sample())

    def history(self, uuid: str, metric: str = "utilization", limit: int | None = None) -> list[float | None]:
        return []  # the dashboard's sparklines keep their own history for remote GPUs

    def close(self) -> None:
        with self._lock:
            if self._feed is not None:
                self._feed.close()
                self._feed = None


def name_processes(snapshot: GpuSnapshot, engine: Engine | None, instance: str) -> GpuSnapshot:
    """Experiment and owner of every process the sampler tied to a container, from the engine's labels."""
    if engine is None or not any(p.container for g in snapshot.gpus for p in g.processes):
        return snapshot
    try:
        labelled = {c["Id"]: c.get("Labels") or {} for c in engine.list_managed(instance)}
    except PtdeskError:
        return snapshot
    def fill(process):  # type: ignore[no-untyped-def]
        labels = labelled.get(process.container or "", {})
        return replace(process, experiment=labels.get(LABEL_NAME), owner=labels.get(LABEL_OWNER) or process.owner)

    return replace(snapshot, gpus=tuple(replace(g, processes=tuple(map(fill, g.processes))) for g in snapshot.gpus))
