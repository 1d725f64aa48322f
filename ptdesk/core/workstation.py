"""The Workstation: one Docker engine and what this ptdesk home keeps about it.

It is the one object the CLI and the dashboard talk to, for every operation (list, launch,
stop/start/rm, logs, GPUs, collaborators, reconcile, images). It holds the resolved config, the
state store and the engine connection; the engine is connected on first use so that commands that
do not need it (and the dashboard's GPU panel) keep working while the engine is down. Several
workstations will be several of these, one per engine.

The operations themselves live in the core's modules (experiments, launch, collab, rotation, ...),
which take a Workstation; this class only opens the door to each of them, once.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ptdesk.config import LOCAL, Config, WorkstationEntry, for_workstation, load_config
from ptdesk.core import (
    baseline,
    collab,
    collab_export,
    cull,
    environment,
    experiments,
    expiry,
    gpu_claims,
    image_archive,
    images,
    keys,
    listing,
    procmap,
    reconcile,
    remote,
    rotation,
    ssh_config,
    ssh_include,
)
from ptdesk.core import launch as launcher
from ptdesk.core import spec as specs
from ptdesk.core.accounts import Ended
from ptdesk.core.collab_export import Exported
from ptdesk.core.cull import IdleState
from ptdesk.core.engine import Engine
from ptdesk.core.engine_stats import EngineStatsSampler
from ptdesk.core.environment import EnvironmentDiff, ExperimentEnvironment
from ptdesk.core.gpu import GpuSampler
from ptdesk.core.image_archive import ArchiveReport
from ptdesk.core.images import BuildResult, ImageStatus
from ptdesk.core.kinds import REGISTRY, get_kind
from ptdesk.core.kinds.ssh import SSH
from ptdesk.core.lifecycle import ContainerEvent, EventWatcher
from ptdesk.core.logstream import LogStream
from ptdesk.core.models import (
    AuditEntry,
    Collaborator,
    ContainerRotation,
    Experiment,
    GpuInventory,
    GpuSnapshot,
    Launched,
    LaunchSpec,
    RotationResult,
)
from ptdesk.core.reconcile import ReconcileReport
from ptdesk.core.remote_gpus import RemoteGpus
from ptdesk.core.ssh_include import SshConfigState
from ptdesk.core.state import Store, actor
from ptdesk.core.stats import ContainerStats, StatsSampler
from ptdesk.errors import ConfigError, InvalidInput, PtdeskError

Progress = Callable[[str], None]
SSH_INCLUDE_ASKED = "dashboard.ssh_include_asked"  # the store's meta key: the dashboard asked once


class Workstation:
    """One engine: the local one (`entry` None) or a `[workstations.NAME]` reached over SSH."""

    def __init__(self, config: Config | None = None, entry: WorkstationEntry | None = None) -> None:
        # home_config is PTDESK_HOME's own; config is this workstation's view of it (for_workstation).
        self.home_config = config or load_config()
        self.entry = entry
        self.name = entry.name if entry else LOCAL
        self.config = for_workstation(self.home_config, entry) if entry else self.home_config
        unknown = sorted(set(self.config.images) - set(REGISTRY))
        if unknown:  # config.py cannot know the kinds; a typo must not silently launch the default
            raise ConfigError(f"The setting {unknown[0]}_image names no experiment kind.",
                              f"Kinds: {', '.join(REGISTRY)} (set e.g. ssh_image).")
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    # --- what it holds ------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store(self.config.state_path)

    @cached_property
    def gpus(self) -> GpuSampler | RemoteGpus:
        """The process's one NVML sampler (NVML is initialised once, lazily); on a remote workstation
        the samples its sampler container streams over the engine connection."""
        return RemoteGpus(self) if self.entry else GpuSampler()

    @property
    def is_remote(self) -> bool:
        return self.entry is not None

    @cached_property
    def stats_sampler(self) -> StatsSampler | EngineStatsSampler:
        """CPU/memory of running containers from their cgroup files (no engine call); on a remote
        workstation, whose files are there, asked of its engine."""
        return EngineStatsSampler(lambda: self.engine) if self.entry else StatsSampler()

    @property
    def engine(self) -> Engine:
        """The connected engine; raises EngineUnavailable (one clear sentence) when it is down."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = remote.connect(self.home_config, self.entry) if self.entry else Engine.connect()
            return self._engine

    @property
    def engine_connected(self) -> bool:
        """Connected already (so using the engine costs no connection attempt)."""
        return self._engine is not None

    def drop_engine(self) -> None:
        """Forget the connection (after the engine went away) so the next use reconnects."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.close()
            self._engine = None

    def fork(self) -> Workstation:
        """A Workstation of its own (own store connection and engine client) for another thread."""
        return Workstation(self.home_config, self.entry)

    def close(self) -> None:
        self.drop_engine()
        if "gpus" in self.__dict__:
            self.gpus.close()
        if "store" in self.__dict__:
            self.store.close()

    # --- the engine ---------------------------------------------------------------------------
    def engine_version(self) -> str:
        return str(self.engine.version().get("Version", "?"))

    def image_exists(self, ref: str) -> bool:
        return self.engine.image_exists(ref)

    # --- experiments --------------------------------------------------------------------------
    def list_experiments(self, all: bool = True) -> list[Experiment]:
        return listing.list_experiments(self, all=all)

    def experiment(self, name: str) -> Experiment:
        return listing.get(self, name)

    def suggest_name(self, owner: str, kind: str) -> str:
        return specs.suggest_name(self, owner, kind)

    def make_spec(self, kind: str, **typed: Any) -> LaunchSpec:
        """Check what a person typed (CLI options or the form's fields) into a LaunchSpec."""
        return specs.make_spec(self, kind, **typed)

    def launch(self, spec: LaunchSpec, progress: Progress = lambda step: None) -> Launched:
        return launcher.launch(self, spec, progress)

    def stop(self, name: str) -> Experiment:
        return experiments.stop(self, name)

    def start(self, name: str, gpus: str | None = None, queue: bool = False) -> Experiment:
        return experiments.start(self, name, gpus=gpus, queue=queue)

    def remove(self, name: str, force: bool = False) -> None:
        experiments.remove(self, name, force=force)

    def logs(self, name: str, tail: int | str = 100, follow: bool = False) -> Iterator[str]:
        return experiments.logs(self, name, tail=tail, follow=follow)

    def ssh_argv(self, name: str, command: Sequence[str] = (), options: Sequence[str] = ()) -> list[str]:
        """The OpenSSH command line that logs in to SSH experiment `name` through ptdesk's own ssh
        config (host key pinned, ptdesk's key only; `-F` so no other config can change that),
        running `command` there word by word (each quoted for the remote shell, as exec would take
        them), or a login shell when it is empty; `options` go before the name."""
        experiment = self.experiment(name)
        if experiment.kind != SSH.name or experiment.access is None:
            raise InvalidInput(f"{name!r} is not an SSH experiment of yours that can be logged in to.",
                               "Pick one of yours from: ptdesk ls")
        if experiment.status != "running":
            raise InvalidInput(f"{name!r} is {experiment.status}, so nothing answers there.",
                               f"Start it first: ptdesk start {name}")
        path = ssh_config.refresh(self.config)
        return ["ssh", "-F", str(path), *options, name, *(shlex.quote(word) for word in command)]

    def ssh_config(self, install: bool = False) -> SshConfigState:
        """ptdesk's own ssh config, rewritten now; with `install`, the Include line added to
        ~/.ssh/config first (only when asked: the person's file is theirs)."""
        return ssh_include.state(self.config, add_include=install)

    def log_stream(self, container_id: str, **options: Any) -> LogStream:
        """A background-read log stream of one container (the dashboard's log pane); `options` are
        LogStream.for_container's (on_batch, tail, max_lines, is_alive, ...). Not started yet."""
        return LogStream.for_container(self.engine, container_id, **options)

    def container_stats(self, container_ids: Iterable[str]) -> dict[str, ContainerStats]:
        return self.stats_sampler.sample(container_ids)

    # --- GPUs ---------------------------------------------------------------------------------
    def gpu_snapshot(self, attribute: bool = True, use_engine: bool = True) -> GpuSnapshot:
        """One NVML sample; with `attribute`, each process named with its container, experiment and
        owner. The engine is asked only when some GPU process lives in a container (and `use_engine`:
        the dashboard says no while the engine is known to be down), so this works with the engine
        down or absent. Never raises for NVML: a broken GPU stack is a value."""
        snapshot = self.gpus.sample()
        if not attribute or self.entry:  # a remote sample arrives attributed (ptdesk.core.remote_gpus)
            return snapshot
        engine = self._engine_or_none() if use_engine and procmap.any_in_container(snapshot) else None
        store = self._store_or_none() if any(g.processes for g in snapshot.gpus) else None
        return procmap.attribute(snapshot, engine, self.config.instance, store=store)

    def gpu_inventory(self) -> GpuInventory:
        """What the ledger may give: GPUs used outside ptdesk beyond the threshold say so."""
        return gpu_claims.inventory(self)

    def gpu_claims(self, snapshot: GpuSnapshot, reader: gpu_claims.HoldReader | None = None,
                   use_engine: bool = True) -> dict[int, gpu_claims.GpuClaim]:
        """Per GPU: held by whom (busy or idle), reserved, unclaimed use (ptdesk.core.gpu_claims)."""
        return gpu_claims.claims(self, snapshot, reader, use_engine)

    def _engine_or_none(self) -> Engine | None:
        try:
            return self.engine
        except PtdeskError:
            return None

    def _store_or_none(self) -> Store | None:
        """The store names owners while the engine is away; one that cannot be opened means fewer
        names, never a failed sample (the list and the doctor report that problem); one that does not
        exist yet is not made by looking at GPUs."""
        if "store" not in self.__dict__ and not self.config.state_path.exists():
            return None
        try:
            return self.store
        except (PtdeskError, OSError):
            return None

    # --- keeping it clean ---------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        return reconcile.reconcile(self)

    def watch_events(self, on_event: Callable[[ContainerEvent], None],
                     on_engine: Callable[[bool, str | None], None], stop: threading.Event,
                     on_reconcile: Callable[[object], None] = lambda report: None) -> None:
        """Follow the engine's events until `stop` is set: cleanup on die/destroy, reconnect with
        `since=`, reconciliation on reconnect (ptdesk.core.lifecycle)."""
        EventWatcher(self, on_event=on_event, on_engine=on_engine, on_reconcile=on_reconcile).run(stop)

    def idle_states(self) -> list[IdleState]:
        return cull.idle_states(self)

    def cull(self, limit: float, dry_run: bool = False) -> list[IdleState]:
        return cull.cull(self, limit, dry_run=dry_run)

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        return self.store.audit_log(limit)

    # --- collaborators ------------------------------------------------------------------------
    def collaborators(self) -> list[Collaborator]:
        return collab.list_collaborators(self)

    def pending_grants(self, name: str) -> tuple[str, ...]:
        return collab.pending_grants(self, name)

    def add_collaborator(self, name: str, pubkey_text: str | None = None, expires: str | None = None) -> Collaborator:
        return collab.add(self, name, pubkey_text, expires)

    def remove_collaborator(self, name: str) -> list[Ended]:
        """Revoke everywhere (ending what they run), then forget them; what was ended, by experiment."""
        return collab.remove(self, name)

    def grant(self, name: str, experiment: str) -> bool:
        return collab.grant(self, name, experiment)

    def revoke(self, name: str, experiment: str) -> Ended:
        """Refuse their new logins and end their sessions and processes there; what was ended."""
        return collab.revoke(self, name, experiment)

    def end_expired(self) -> list[Ended]:
        """End what expired collaborators still run (sshd already refuses their logins)."""
        return expiry.end_expired(self)

    def finish_pending(self, experiment: str) -> dict[str, ContainerRotation]:
        """Finish key rotations that waited for `experiment` to run again, by collaborator."""
        return rotation.finish_pending(self, experiment)

    def rotate(self, name: str, expires: str | None = None, pubkey_text: str | None = None) -> RotationResult:
        """A new key everywhere `name` has access, never locking them out (ptdesk.core.rotation);
        `pubkey_text` for a person who brings their own key."""
        return rotation.rotate(self, name, expires, pubkey_text)

    def export_collaborator(self, name: str, folder: str | Path, dest: str | None = None,
                            jump: str | None = None) -> Exported:
        return collab_export.export(self, name, folder, dest, jump)

    # --- images -------------------------------------------------------------------------------
    def image_statuses(self, kinds: Iterable[str] | None = None) -> list[ImageStatus]:
        return images.statuses(self, kinds)

    def build_images(self, kinds: Iterable[str], base: str | None = None, ca_bundle: Path | None = None,
                     force: bool = False, on_line: Progress | None = None,
                     on_start: Callable[[str, str], None] | None = None) -> list[BuildResult]:
        return images.build(self, kinds, base=base, ca_bundle=ca_bundle, force=force, on_line=on_line,
                            on_start=on_start)

    # --- environments: what experiments really run, drift, moving and pinning images ----------
    # (ptdesk.core.environment, image_env, image_archive, baseline)
    def environment(self, name: str) -> ExperimentEnvironment:
        """The recorded environment of `name`, its live one while it runs, and what changed since launch."""
        return environment.environment(self, name)

    def check_environments(self) -> list[ExperimentEnvironment]:
        """Live-check every running experiment (refreshes the listing's "changed" marks)."""
        return environment.check_all(self, self.list_experiments(all=False))

    def environment_diff(self, a: str, b: str) -> EnvironmentDiff:
        """Package by package between two experiments, or an experiment and `image:KIND`."""
        return environment.diff(self, a, b)

    def save_images(self, kinds: Iterable[str], path: Path) -> ArchiveReport:
        return image_archive.save(self.engine, self.config, kinds, path)

    def load_images(self, path: Path) -> ArchiveReport:
        return image_archive.load(self.engine, path)

    def verify_images(self, path: Path) -> ArchiveReport:
        """Check a saved file without loading it."""
        images_in = image_archive.verify(path)
        return ArchiveReport(path, images_in, path.stat().st_size, 0.0)

    def pin_images(self, kinds: Iterable[str]) -> list[baseline.Pinned]:
        return baseline.pin_current(self.engine, self.config, kinds, actor())

    def baseline(self) -> dict[str, baseline.Pinned]:
        return baseline.read(self.config)

    # --- what the dashboard asks besides (tui) ------------------------------------------------
    # Thin doors added for the dashboard, kept together so they are easy to fold into the above.
    def default_owner(self) -> str:
        """Who a new experiment belongs to when nobody is named (what make_spec uses too)."""
        return specs.current_user()

    def kind_titles(self) -> dict[str, str]:
        """Kind name -> how people call it ("ssh" -> "SSH"), in the registry's order."""
        return {name: kind.title for name, kind in REGISTRY.items()}

    def image_for(self, kind: str) -> str:
        """The image a new experiment of `kind` runs unless another is named."""
        return get_kind(kind).image(self.config)

    def gpu_history(self, uuid: str) -> tuple[float | None, ...]:
        """Recent utilisation of one GPU (percent, None where unread), oldest first."""
        return self.gpus.history(uuid)

    def idle_gpus(self, history: Sequence[GpuSnapshot], for_seconds: float = 1800.0) -> dict[str, float]:
        """GPUs holding memory at 0 % utilisation for `for_seconds` in `history`: label -> seconds
        (the judge `cull` uses; pure, no I/O)."""
        return cull.idle_gpus(history, for_seconds)

    def ssh_include_offer(self) -> SshConfigState | None:
        """ptdesk's ssh config state when the dashboard should offer to add its Include line to the
        person's ~/.ssh/config: not there yet, and never answered before (it asks once)."""
        if self.store.get_meta(SSH_INCLUDE_ASKED) is not None:
            return None
        state = self.ssh_config()
        return None if state.installed else state

    def answer_ssh_include(self, yes: bool) -> SshConfigState | None:
        """Remember the answer (never asked again); with yes, add the Include line (only then)."""
        self.store.set_meta(SSH_INCLUDE_ASKED, "yes" if yes else "no")
        return self.ssh_config(install=True) if yes else None

    def public_key_from_file(self, path: str | Path) -> str:
        """The public key in the file at `path` (a collaborator's own .pub), checked; BadKey if not one."""
        return keys.read_public_key_file(path)

    def container_running(self, container_id: str) -> bool:
        """Whether the container exists and runs (the log pane's check on a quiet follow)."""
        data = self.engine.try_inspect(container_id)
        return bool(data and data.get("State", {}).get("Running"))
