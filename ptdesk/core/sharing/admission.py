"""Admitting queued requests: any person's ptdesk on the box (and the box's `ptdesk watch`) may do it.

A round holds the engine's GPU lock from reading the holds to the last admitted container's
start, so no GPU is given twice and no entry is admitted twice, whoever else admits at the same
moment. Admitting an entry re-makes its never-started container with the chosen GPUs (Docker
cannot change a container's devices): the new one (`NAME.admit`) is created with the same
configuration and labels plus `ptdesk.queue.from=<entry id>`, the entry's writable layer is copied
over (its placed secrets, and all a re-filed stopped experiment had made in it; container to
container, never through an image), the entry is removed, the new one renamed and
started. Its seal still verifies (same sealed labels, same secrets), so the owner's ptdesk takes it
over (`follow`) at its next reconcile or event, whether or not it was open meanwhile.

A round that died half-way is finished or undone by the next one (`repair`): a `.admit` container
whose entry still exists is removed (undone); one whose entry is gone is renamed and started
(finished).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ptdesk.core.access.seal import sealed_container
from ptdesk.core.base import clock
from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_MANAGED
from ptdesk.core.engine.locks import machine_gpu_lock
from ptdesk.core.gpu import ledger
from ptdesk.core.host.ports import PORT_ATTEMPTS, free_port, port_taken
from ptdesk.core.kinds import get_kind
from ptdesk.core.notify import hooks
from ptdesk.core.sharing import booking, gpu_queue, records
from ptdesk.core.sharing.gpu_queue import ADMITTED, LABEL_FROM, LABEL_QUEUE, QueueEntry
from ptdesk.core.sharing.queue_view import held_on
from ptdesk.core.sharing.recreate import copy_layer
from ptdesk.core.sharing.reservations import Reservation
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

ADMIT_SUFFIX = ".admit"


def admit(site: Site, now: float | None = None, wait: float | None = None) -> list[str]:
    """One admission round; the names admitted. Costs one listing when the queue is empty.
    `wait`: at most this long for the GPU lock (default gpu_lock_wait); GpuLockBusy after."""
    listed = site.engine.list_managed(site.config.instance)
    pending = [c for c in listed if (c.get("Labels") or {}).get(LABEL_QUEUE) == ADMITTED
               and c.get("State") == "created"]
    ordered = gpu_queue.fair_order(gpu_queue.entries(listed))
    if not ordered and not pending:
        return []
    image = (ordered[0] if ordered else None) and _image_of(listed, ordered[0])
    wait = site.config.gpu_lock_wait if wait is None else wait
    with machine_gpu_lock(site.engine, image or booking.record_image(site), wait):
        repair(site)
        listed = site.engine.list_managed(site.config.instance)  # again, under the lock: the truth now
        ordered = gpu_queue.fair_order(gpu_queue.entries(listed))
        inventory = site.gpu_inventory()
        reservations: list[Reservation] = booking.reservations(site) if ordered else []
        plan = gpu_queue.plan(ordered, held_on(site, listed, inventory), inventory, reservations,
                              clock.now() if now is None else now)
        done = []
        for entry, gpus in plan.admit:
            try:
                admit_one(site, entry, gpus)
                done.append(entry.name)
            except NotFound:
                continue  # cancelled meanwhile
    return done


def _image_of(listed: Iterable[Mapping], entry: QueueEntry) -> str | None:
    return next((c.get("Image") for c in listed if c["Id"] == entry.container_id), None)


def admit_one(site: Site, entry: QueueEntry, gpus: tuple[int, ...]) -> str:
    """Re-make `entry` on `gpus` and start it; the new container's id."""
    engine = site.engine
    document = engine.inspect(entry.container_id)
    final = document["Name"].lstrip("/")
    labels = {**((document.get("Config") or {}).get("Labels") or {}), LABEL_QUEUE: ADMITTED,
              LABEL_FROM: entry.container_id}
    devices = {"DeviceRequests": [{"Driver": "", "Count": 0, "DeviceIDs": [str(g) for g in gpus],
                                   "Capabilities": [["gpu"]], "Options": {}}]}
    new = records.remake(engine, document, final + ADMIT_SUFFIX, labels, devices)
    try:
        # Its whole writable layer: the secrets its launch placed, and for a stopped experiment
        # filed again (`ptdesk start --queue`) everything the person made in it since.
        copy_layer(site, entry.container_id, new)
    except BaseException:
        engine.remove(new, force=True)  # undone: the entry waits on
        raise
    engine.remove(entry.container_id, force=True)  # from here on, only forward (repair finishes it)
    engine.rename(new, final)
    return start_admitted(site, new)


def start_admitted(site: Site, container_id: str) -> str:
    """Start an admitted container; when its port was taken while it waited, on a fresh one."""
    engine = site.engine
    for tries in range(PORT_ATTEMPTS):
        try:
            engine.start(container_id)
            return container_id
        except PtdeskError as exc:
            if not port_taken(exc) or tries == PORT_ATTEMPTS - 1:
                raise
        document = engine.inspect(container_id)
        host = document.get("HostConfig") or {}
        ports = {key: [{**b, "HostPort": str(free_port(b.get("HostIp") or "127.0.0.1"))} for b in bindings]
                 for key, bindings in (host.get("PortBindings") or {}).items()}
        name = document["Name"].lstrip("/")
        again = records.remake(engine, document, name + ADMIT_SUFFIX, document["Config"]["Labels"],
                                      {"PortBindings": ports})
        copy_layer(site, container_id, again)
        engine.remove(container_id, force=True)
        engine.rename(again, name)
        container_id = again
    return container_id


def repair(site: Site) -> list[str]:
    """Finish or undo admissions that died half-way (call under the GPU lock); the names touched."""
    engine, touched = site.engine, []
    found = records.list_labelled(engine, {LABEL_MANAGED: "1", LABEL_INSTANCE: site.config.instance,
                                                  LABEL_QUEUE: ADMITTED})
    for container in found:
        labels, name = container.get("Labels") or {}, (container.get("Names") or ["/?"])[0].lstrip("/")
        if container.get("State") != "created":
            continue
        source = labels.get(LABEL_FROM) or ""
        if name.endswith(ADMIT_SUFFIX) and source and engine.try_inspect(source) is not None:
            engine.remove(container["Id"], force=True)  # the entry is still there: undo
        else:
            if name.endswith(ADMIT_SUFFIX):
                engine.rename(container["Id"], name[:-len(ADMIT_SUFFIX)])
            start_admitted(site, container["Id"])
        touched.append(labels.get("ptdesk.name", name))
    return touched


def follow(site: Site, record: ExperimentRecord, containers: Iterable[Mapping]) -> bool:
    """The owner's side: a queued record whose entry was admitted (by anyone) takes over the
    admitted container, if this home's seal verifies on it. False when there is none (yet)."""
    if record.status != "queued" or not record.container_id:
        return False
    successor = next((c for c in containers if (c.get("Labels") or {}).get(LABEL_FROM) == record.container_id), None)
    if successor is None:
        return False
    kind = get_kind(record.kind)
    if not sealed_container(site.config, successor.get("Labels") or {},
                            lambda path: site.engine.read_file(successor["Id"], path), kind.sealed_paths):
        return False
    document = site.engine.inspect(successor["Id"])
    gpus = tuple(sorted(ledger.held_by_devices({record.name: document}, ()).keys()))
    port = next((int(b["HostPort"]) for bindings in ((document.get("NetworkSettings") or {}).get("Ports") or {})
                 .values() for b in bindings or [] if b.get("HostPort")), record.port)
    running = bool((document.get("State") or {}).get("Running"))
    site.store.update_experiment(record.name, container_id=successor["Id"], gpus=list(gpus), port=port,
                              status="running" if running else "exited", launcher_pid=None)
    updated = site.store.experiment(record.name)
    if updated is not None:
        kind.after_start(site.config, updated)
    site.store.audit("admitted", record.name, {"gpus": list(gpus), "container": successor["Id"][:12]})
    if updated is not None and running:  # the owner hears it, on their routes (once per box)
        access = kind.access(site.config, updated, site.config.connect_host)
        with contextlib.suppress(PtdeskError, OSError):  # a route's trouble never undoes the admission
            hooks.queued_started(site, record.name, access.connect if access else "", successor["Id"])
    return True
