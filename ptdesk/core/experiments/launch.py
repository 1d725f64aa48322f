"""Turn a LaunchSpec into a hardened, running, proven-ready container — or into nothing at all.

Order matters for cleanup: the record is written as "launching" (with the GPUs it reserves) before
the container exists, so a launcher killed half-way leaves a record that reconciliation rolls back.
Any failure after that removes what was created and the record, then re-raises.

GPUs are the machine's, shared by every user's ptdesk (each with its own store): a launch that asks
for GPUs holds a machine-wide lock from reading the holds (records and every container's label)
until its own container exists with its label.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ptdesk.core.access import ssh_config
from ptdesk.core.access.ownership import instance_containers
from ptdesk.core.access.seal import LABEL_SEAL, seal, secret_digest
from ptdesk.core.base.gpu_models import GpuInventory
from ptdesk.core.base.keys import fingerprint
from ptdesk.core.base.models import Launched, LaunchSpec
from ptdesk.core.base.names import container_name
from ptdesk.core.engine.locks import machine_gpu_lock
from ptdesk.core.engine.network import experiments_network
from ptdesk.core.experiments import hardening
from ptdesk.core.experiments.last_words import last_words
from ptdesk.core.experiments.spec import renamed, suggest_name, writable_by
from ptdesk.core.gpu import ledger
from ptdesk.core.gpu.holds import engine_holds
from ptdesk.core.gpu.ledger import Hold
from ptdesk.core.host import workspace
from ptdesk.core.host.ports import PORT_ATTEMPTS, free_port, port_taken
from ptdesk.core.kinds import Kind, Plan, build_target, get_kind
from ptdesk.core.kinds.base import sealed_contents
from ptdesk.core.sharing import at_launch
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.core.vscode import cache as vscode_cache
from ptdesk.errors import Conflict, ImageMissing, LaunchFailed, NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

Progress = Callable[[str], None]


def launch(site: Site, spec: LaunchSpec, progress: Progress = lambda step: None) -> Launched:
    kind = get_kind(spec.kind)
    progress("Checking the image")
    checked = _check_image(site, spec, kind)
    inventory = site.gpu_inventory() if spec.gpus != "none" else None

    progress("Reserving name and GPUs")
    gpu_lock = contextlib.ExitStack()
    # CPU-only launches never wait for anyone; nor does "auto" where there is no GPU to give.
    if spec.gpus != "none" and not (spec.gpus == "auto" and inventory and not inventory.available):
        gpu_lock.enter_context(machine_gpu_lock(site.engine, spec.image, site.config.gpu_lock_wait))
    with gpu_lock:  # released as soon as the container holding the GPUs has started (below)
        on_engine = instance_containers(site)
        held = _held_on_engine(site, on_engine, inventory)
        # the queue's claims and others' reservations
        held.update(at_launch.claims(site, spec.owner, spec.gpus, on_engine, held, inventory))
        # gpus_wait: filed in the queue instead of started, for want of free GPUs
        spec, launching, gpus_wait = _reserve(site, spec, inventory, on_engine, held)
        attempt = _Attempt(launching, image=checked)
        made_workspace = False
        try:
            spec, made_workspace = _ensure_workspace(site, spec)
            if kind.has_door:  # a batch job has no keys or secrets: no step to say
                progress("Generating keys and secrets")
            plan = kind.plan(site.config, spec)
            if plan.host_public_key:
                site.store.update_experiment(spec.name, host_public_key=plan.host_public_key)
            if gpus_wait:
                _file(site, spec, plan, gpu_lock, attempt, progress)
            else:
                _create_and_start(site, spec, plan, gpu_lock, attempt, progress)
                _prove_ready(site, spec, kind, plan, attempt, progress)
        except BaseException as exc:
            if isinstance(exc, LaunchFailed) and attempt.container_id:
                # The rollback removes the container and its logs: say what it printed while we can.
                exc.hint = last_words(site, attempt.container_id, spec.limits.memory) or exc.hint
                if exc.hint and exc.hint.startswith("The memory limit"):
                    exc.field = "memory"  # what to change (a form puts the cursor there)
            rollback(site, attempt.record, attempt.container_id or _sealed_by(site, spec.name, attempt.seal))
            if made_workspace:
                with contextlib.suppress(OSError):  # only if still empty: never lose a file
                    spec.workspace.rmdir()
            raise
    from ptdesk.core.experiments.listing import get as experiment_of
    return Launched(experiment_of(site, spec.name), launch_warnings(site, spec, launching.gpus, inventory, checked),
                    ledger.why_chosen(ledger.parse_request(spec.gpus), launching.gpus, inventory))


@dataclass
class _Attempt:
    """What a launch has made so far: the "launching" record and the container, for the rollback."""

    record: ExperimentRecord
    container_id: str | None = None
    seal: str | None = None  # the seal label of the container being created: unique to this launch
    image: dict | None = None  # the engine's inspect of the image, read by the check (not read twice)


def _sealed_by(site: Site, name: str, seal_label: str | None) -> str | None:
    """The id of the container this launch created but never heard back about (interrupted while
    the engine answered), found by name and proven ours by its seal: nobody else can make it."""
    if seal_label is None:
        return None
    with contextlib.suppress(PtdeskError):
        found = site.engine.try_inspect(container_name(site.config, name))
        if found and (found["Config"].get("Labels") or {}).get(LABEL_SEAL) == seal_label:
            return found["Id"]
    return None


def _check_image(site: Site, spec: LaunchSpec, kind: Kind) -> dict:
    """The image's inspect; ImageMissing (with how to get it) when the engine has no such image."""
    if (info := site.engine.image_info(spec.image)) is not None:
        return info
    # A job has no image of its own: it runs the SSH kind's, built with `images build ssh`.
    if target := build_target(site.config, spec.image):
        raise ImageMissing(f"Image {spec.image} is not on this engine.", f"Build it with: ptdesk images build {target}")
    own = build_target(site.config, kind.image(site.config))
    raise ImageMissing(f"Image {spec.image} is not on this engine.",
                       "Pull or build it first (docker pull / docker build)"
                       + (f", or leave out --image to use ptdesk's own (ptdesk images build {own})." if own else "."))


def _create_and_start(site: Site, spec: LaunchSpec, plan: Plan, gpu_lock: contextlib.ExitStack,
                      attempt: _Attempt, progress: Progress) -> None:
    """Create the container with its secrets in place and start it, on a fresh port if someone
    took the picked one in between."""
    engine = site.engine
    for tries in range(PORT_ATTEMPTS):
        progress("Creating the container")
        # Known to the rollback before anything else runs: it removes this container by id.
        container_id = attempt.container_id = _create(site, spec, plan, attempt, free_port(site.config.bind_address))
        site.store.update_experiment(spec.name, container_id=container_id)
        for step in _placing(plan, spec.layer_from):
            progress(step)
        _place(site, container_id, plan, spec.layer_from)
        progress("Starting")
        if tries == 0:  # what the rest of the launch needs loads while the engine starts the container
            threading.Thread(target=_load_the_rest, args=(get_kind(spec.kind),), name="ptdesk-launch-load").start()
        try:
            engine.start(container_id)
            # Only now: a retry below removes the container whose device request holds the GPUs
            # for every user's ledger, and nobody may take them before the next one exists.
            gpu_lock.close()
            # The image id it really runs (a tag moves with each rebuild) and its fingerprint: asked
            # while the service in it starts up, when nothing else is to be done.
            from ptdesk.core.environment import drift
            site.store.update_experiment(spec.name, **drift.at_launch(site, container_id, attempt.image))
            return
        except PtdeskError as exc:
            if not port_taken(exc) or tries == PORT_ATTEMPTS - 1:
                raise
            # Someone took the port between our pick and the start: drop this container, pick again.
            engine.remove(container_id, force=True)


def _load_the_rest(kind: Kind) -> None:
    """Import what the launch needs after the start (the kind's readiness proof, the environment
    record, the listing that answers): run in a thread of its own while the engine starts the
    container, the imports overlap that wait (the socket wait releases the GIL) instead of following it."""
    kind.warm_up()
    import ptdesk.core.environment.drift
    import ptdesk.core.experiments.listing  # noqa: F401


def _file(site: Site, spec: LaunchSpec, plan: Plan, gpu_lock: contextlib.ExitStack, attempt: _Attempt,
          progress: Progress) -> None:
    """File the request in the queue: its container made with its secrets placed, no GPU, never
    started (admission starts it on the GPUs it gets; ptdesk.core.sharing.admission)."""
    from ptdesk.core.environment import drift

    progress("Filing it in the GPU queue")
    container_id = attempt.container_id = _create(site, spec, plan, attempt, free_port(site.config.bind_address),
                                                  queued=at_launch.queue_labels(spec))
    site.store.update_experiment(spec.name, container_id=container_id,
                                 **drift.at_launch(site, container_id, attempt.image))
    attempt.record = replace(attempt.record, container_id=container_id)
    _place(site, container_id, plan, spec.layer_from)
    site.store.update_experiment(spec.name, status=at_launch.QUEUED, launcher_pid=None)  # whole: admission may take it
    gpu_lock.close()
    site.store.audit("queued", spec.name, {"kind": spec.kind, "owner": spec.owner, "gpus": spec.gpus})


def _placing(plan: Plan, layer_from: str | None) -> list[str]:
    """The steps _place really takes, as said to the person (only those that happen)."""
    return ([f"Copying the environment of '{layer_from}'"] if layer_from else []) \
        + (["Placing secrets"] if plan.files else []) + (["Placing the code snapshot"] if plan.archives else [])


def _place(site: Site, container_id: str, plan: Plan, layer_from: str | None = None) -> None:
    """The plan's files, a job's --like experiment's layer (ptdesk.core.jobs.like), then its
    archives (a job's code snapshot), into the created container."""
    if layer_from:
        from ptdesk.core.jobs import like  # a job's --like only: not imported by other launches
        like.copy_environment(site, layer_from, container_id)
    # One archive for all folders: every put_archive mounts the container's filesystem (~50 ms).
    if plan.files:
        site.engine.put_files(container_id, "/", [replace(f, name=f"{dest.strip('/')}/{f.name}")
                                                  for dest, files in plan.files for f in files])
    for dest, path in plan.archives:
        with open(path, "rb") as archive:
            site.engine.put_archive(container_id, dest, archive)


def _prove_ready(site: Site, spec: LaunchSpec, kind: Kind, plan: Plan, attempt: _Attempt,
                 progress: Progress) -> None:
    """Wait until a client really gets in, then mark the record running and audit the launch.
    A kind with no door (a job) is running once started."""
    engine, store, config = site.engine, site.store, site.config
    container_id = attempt.container_id
    assert container_id is not None
    if plan.container_port is None:
        store.audit("launch", spec.name, {"kind": spec.kind, "owner": spec.owner, "image": spec.image,
                                           "gpus": list(attempt.record.gpus)})
        store.update_experiment(spec.name, status="running", launcher_pid=None)
        return
    bound = engine.published_port(container_id, plan.container_port)
    if bound is None:
        # Exited at once: the engine drops its ports, and may still call it running for a moment.
        deadline = time.monotonic() + 2.0
        while engine.is_running(container_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not engine.is_running(container_id):
            raise LaunchFailed("The container stopped right after it started.")
        raise NotFound("The engine published no port for the container.", "Check `docker inspect` output.")
    store.update_experiment(spec.name, port=bound[1])
    record = store.experiment(spec.name)
    assert record is not None
    kind.after_start(config, record)
    progress("Waiting until the service lets you in")
    kind.wait_ready(config, record, config.connect_host, bound[1], config.ready_timeout,
                    is_alive=lambda: engine.is_running(container_id))
    host_key = record.host_public_key and fingerprint(record.host_public_key)
    store.audit("launch", spec.name, {"kind": spec.kind, "owner": spec.owner, "image": spec.image,
                                       "gpus": list(record.gpus), "port": bound[1], "host_key": host_key})
    # Last: once the record says running, a failure can no longer roll the launch back.
    store.update_experiment(spec.name, status="running", launcher_pid=None)


def launch_warnings(site: Site, spec: LaunchSpec, gpus: tuple[int, ...], inventory: GpuInventory | None,
                    image: dict | None = None) -> tuple[str, ...]:
    """What the person should know about a launch that worked, one sentence each with its fix.
    `image`: the image's inspect when the launch read it already."""
    config = site.config
    warnings = []
    if not writable_by(spec.workspace, config.uid, config.gid):
        warnings.append(f"{spec.workspace} is not writable by uid {config.uid} (the container user): nothing can "
                        f"be saved there. Fix: chown {config.uid} {spec.workspace}")
    if spec.gpus == "auto" and not gpus and not spec.queue:
        # Never a silent CPU run: say why auto found no GPU to give.
        reason = (inventory.reason if inventory else None) or "every GPU is held by another experiment."
        warnings.append(f"No GPU was given: {reason}")
    warnings += at_launch.warnings(site, spec.owner, gpus)
    from ptdesk.core.environment import drift
    warnings += drift.launch_warnings(site, spec.kind, spec.image, gpus, inventory.driver if inventory else None,
                                      image)
    warnings += spec.notes  # defaults lowered to the box: last, after what needs acting on
    return tuple(warnings)


def _held_on_engine(site: Site, on_engine: Mapping[str, dict],
                    inventory: GpuInventory | None) -> dict[int, Hold]:
    """The GPUs the engine really gives the instance's containers (asked only when this launch
    wants GPUs, and before the store's lock is taken); stopped ones only within their hold."""
    if inventory is None:
        return {}
    return engine_holds(site, on_engine, (g.index for g in inventory.gpus))


def _reserve(site: Site, spec: LaunchSpec, inventory: GpuInventory | None,
             on_engine: Mapping[str, dict], held_on_engine: Mapping[int, Hold | str]
             ) -> tuple[LaunchSpec, ExperimentRecord, bool]:
    """Pick the name and the GPUs and write the "launching" record, in one store transaction.

    The engine was asked before (`on_engine`): no HTTP request may run while the store's lock is
    held, or a slow engine would make every other ptdesk process time out waiting for the database.
    """
    store = site.store
    with store.tx() as conn:
        if spec.auto_name:
            # A launch running beside this one may have taken the suggested name: pick again, under the lock.
            spec = renamed(site.config, spec, suggest_name(site, spec.owner, spec.kind, on_engine))
        if store.experiment(spec.name) or spec.name in on_engine:
            raise Conflict(f"An experiment named {spec.name!r} already exists.", "Pick another --name.", field="name")
        # A record holds its GPUs only while its container is not on the engine yet (a launch in
        # flight); once it is, the engine's record of the container says (a stopped one: for the hold).
        held: dict[int, str | Hold] = {i: n for i, n in store.held_gpus(conn).items() if n not in on_engine}
        held.update(held_on_engine)
        gpus = at_launch.allocate_or_queue(spec, held, inventory)
        record = ExperimentRecord(
            name=spec.name, kind=spec.kind, owner=spec.owner, image=spec.image, status="launching",
            created=time.time(), gpus=gpus or (), workspace=str(spec.workspace),
            launcher_pid=os.getpid(), limits=spec.limits, extra_keys=spec.extra_keys)
        store.insert_experiment(conn, record)
    return spec, record, gpus is None


def _create(site: Site, spec: LaunchSpec, plan: Plan, attempt: _Attempt, port: int,
            queued: Mapping[str, str] | None = None) -> str:
    """Create the container; a name the engine already has (taken since we listed) is a Conflict.
    `queued`: the queue's labels, for a request filed instead of started (not sealed: the queue's
    bookkeeping, which admission changes)."""
    config, gpus = site.config, attempt.record.gpus
    labels = hardening.labels(config, spec, gpus)
    labels[LABEL_SEAL] = attempt.seal = seal(config, labels, secret_digest(sealed_contents(get_kind(spec.kind), plan)))
    labels.update(queued or {})
    network = experiments_network(site.engine, spec.image)  # no reaching each other; its errors are its own
    host_config = {**hardening.host_config(config, spec, plan, gpus, port), "network_mode": network}
    if get_kind(spec.kind).mounts_vscode_cache:
        host_config["binds"].update(vscode_cache.binds(site))  # read-only; none until the box has a cache
    try:
        return site.engine.create(
            name=container_name(config, spec.name), image=spec.image, labels=labels,
            user=plan.user, environment=plan.environment, exposed=[plan.container_port] if plan.container_port else [],
            command=list(plan.command) if plan.command else None, working_dir=plan.working_dir,
            entrypoint=list(plan.entrypoint) if plan.entrypoint else None,
            hostname=spec.name,  # a shell prompt inside says which experiment, not a container id
            host_config=host_config)
    except Conflict:
        raise Conflict(f"An experiment named {spec.name!r} already exists.", "Pick another --name.",
                       field="name") from None


def rollback(site: Site, record: ExperimentRecord, container_id: str | None) -> bool:
    """Undo a launch: host-side secrets, record (and with it the GPU reservation), container.

    Only while the store's record of that name is still `record`'s launch (same status, launcher
    PID and creation time: together they name one launch), checked under the store's lock: a
    reconcile pass holding an old copy must not delete a newer launch that reused the name. The
    container id the record holds is not compared: a launch interrupted between creating its
    container and recording it must still roll back. `container_id` is removed by id only, never
    by name: a name can belong to someone else's container. False when nothing was done.
    """
    launch_of_record = {"status": record.status, "launcher_pid": record.launcher_pid, "created": record.created}
    if not site.store.delete_experiment_if(record.name, launch_of_record,
                                         first=lambda: experiment_files.discard(site.config, record.name)):
        return False
    ssh_config.refresh_quietly(site.config)  # its Host block goes with it
    if container_id:
        site.engine.remove(container_id, force=True)
    return True


def _ensure_workspace(site: Site, spec: LaunchSpec) -> tuple[LaunchSpec, bool]:
    """The spec with its workspace resolved (what is bound and recorded), and whether this call
    made the folder: a default one is made (or an existing one checked) safely, by the workspace rule."""
    config, engine_root = site.config, workspace.docker_root(site.engine)
    if spec.workspace != config.workspaces / spec.name:
        # Typed with --workspace: make_spec resolved it; checked again right before it is bound
        # (the dashboard's form may have sat open for a while).
        return replace(spec, workspace=workspace.check(config, spec.workspace, engine_root=engine_root,
                                                       recorded=True)), False
    real, made = workspace.make_default(config, spec.workspace, engine_root=engine_root)
    site.store.update_experiment(spec.name, workspace=str(real))
    return replace(spec, workspace=real), made

