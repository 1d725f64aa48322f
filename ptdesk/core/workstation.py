"""The Workstation: one Docker engine and what this ptdesk home keeps about it.

The one object the CLI and the dashboard talk to, for every operation (list, launch, stop/start/rm,
logs, GPUs, collaborators, reconcile, images). It holds the resolved config, the state store and
the engine connection, made on first use: what does not need the engine works while it is down.

The operations live in the core's packages and take a Site (this class is one); this class opens
the door to each. Like docker-py's client it builds its parts on first use, and each door imports
its operation when first called: importing the Workstation (every command does) costs no Docker
SDK, no paramiko and no operation that command does not use.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptdesk.config import LOCAL, Config, WorkstationEntry, for_workstation, load_config
from ptdesk.core.collaborators.doors import CollaboratorDoors
from ptdesk.core.environment.doors import EnvironmentDoors
from ptdesk.errors import ConfigError, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.access.ssh_include import SshConfigState
    from ptdesk.core.base.gpu_models import GpuInventory, GpuSnapshot
    from ptdesk.core.base.models import Experiment, Launched, LaunchSpec
    from ptdesk.core.base.people_models import AuditEntry
    from ptdesk.core.engine.client import Engine
    from ptdesk.core.engine.logs import LogStream
    from ptdesk.core.engine.stats import EngineStatsSampler
    from ptdesk.core.environment.drift import ExperimentEnvironment
    from ptdesk.core.experiments.cull import IdleState
    from ptdesk.core.experiments.culling import CullPlan, GpuWindow
    from ptdesk.core.experiments.lifecycle import ContainerEvent
    from ptdesk.core.experiments.reconcile import ReconcileReport
    from ptdesk.core.gpu.nvml import GpuSampler
    from ptdesk.core.gpu.remote import RemoteGpus
    from ptdesk.core.host.cgroups import ContainerStats, StatsSampler
    from ptdesk.core.notify.herald import Herald, Said
    from ptdesk.core.sharing.claims import GpuClaim, HoldReader
    from ptdesk.core.store.state import Store

Progress = Callable[[str], None]
SSH_INCLUDE_ASKED = "dashboard.ssh_include_asked"  # the store's meta key: the dashboard asked once


class Workstation(CollaboratorDoors, EnvironmentDoors):
    """One engine: the local one (`entry` None) or a `[workstations.NAME]` reached over SSH."""

    def __init__(self, config: Config | None = None, entry: WorkstationEntry | None = None) -> None:
        # home_config is PTDESK_HOME's own; config is this workstation's view of it (for_workstation).
        from ptdesk.core.gpu.sampler_image import SAMPLER_TARGET
        from ptdesk.core.kinds import REGISTRY
        self.home_config = config or load_config()
        self.entry = entry
        self.name = entry.name if entry else LOCAL
        self.config = for_workstation(self.home_config, entry) if entry else self.home_config
        unknown = sorted(set(self.config.images) - set(REGISTRY) - {SAMPLER_TARGET})
        if unknown:  # config.py cannot know the kinds; a typo must not silently launch the default
            raise ConfigError(f"The setting {unknown[0]}_image names no experiment kind.", f"Kinds: "
                              f"{', '.join(REGISTRY)} (set e.g. ssh_image; sampler_image names the GPU sampler's).")
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    # --- what it holds ------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        from ptdesk.core.store.state import Store
        return Store(self.config.state_path)

    @cached_property
    def gpus(self) -> GpuSampler | RemoteGpus:
        """The process's one NVML sampler (NVML is initialised once, lazily); on a remote workstation
        the samples its sampler container streams over the engine connection."""
        if self.entry:
            from ptdesk.core.gpu.remote import RemoteGpus  # (only here: a local one needs no wire format)
            return RemoteGpus(self)
        from ptdesk.core.gpu.nvml import GpuSampler
        return GpuSampler()

    @property
    def is_remote(self) -> bool:
        return self.entry is not None

    @cached_property
    def stats_sampler(self) -> StatsSampler | EngineStatsSampler:
        """CPU/memory of running containers from their cgroup files (no engine call); on a remote
        workstation, whose files are there, asked of its engine."""
        from ptdesk.core.engine.stats import EngineStatsSampler
        from ptdesk.core.host.cgroups import StatsSampler
        return EngineStatsSampler(lambda: self.engine) if self.entry else StatsSampler()

    @property
    def engine(self) -> Engine:
        """The connected engine; raises EngineUnavailable (one clear sentence) when it is down."""
        from ptdesk.core.engine.client import Engine
        with self._engine_lock:
            if self._engine is None and self.entry:  # only an ssh:// one imports paramiko (engine.sdk)
                from ptdesk.core.engine import remote
                self._engine = remote.connect(self.home_config, self.entry)
            elif self._engine is None:
                self._engine = Engine.connect()
            return self._engine

    def expect_launch(self) -> None:
        """A launch follows: connect now and have the engine's info read meanwhile (read_info_ahead);
        quiet (what follows meets a down engine); local only (a dead box's connect costs seconds)."""
        if self.entry is None:
            with contextlib.suppress(PtdeskError):
                self.engine.read_info_ahead()

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

    def engine_version(self) -> str:
        return str(self.engine.version().get("Version", "?"))

    def image_exists(self, ref: str) -> bool:
        return self.engine.image_exists(ref)

    # --- the engine and experiments -----------------------------------------------------------
    def list_experiments(self, all: bool = True) -> list[Experiment]:
        from ptdesk.core.experiments import listing
        return listing.list_experiments(self, all=all, driver=self.known_driver())

    def experiment(self, name: str) -> Experiment:
        from ptdesk.core.experiments import listing
        return listing.get(self, name, driver=self.known_driver())

    def known_driver(self) -> str | None:
        """The driver version NVML already gave this Workstation's sampler (for the driver warning),
        without initialising NVML for it."""
        last = getattr(self.__dict__.get("gpus"), "last", None)
        return last.driver if last is not None else None

    def suggest_name(self, owner: str, kind: str) -> str:
        from ptdesk.core.experiments import spec as specs
        return specs.suggest_name(self, owner, kind)

    def make_spec(self, kind: str, **typed: Any) -> LaunchSpec:
        """Check what a person typed (CLI options or the form's fields) into a LaunchSpec."""
        from ptdesk.core.experiments import spec as specs
        return specs.make_spec(self, kind, **typed)

    def launch(self, spec: LaunchSpec, progress: Progress = lambda step: None) -> Launched:
        from ptdesk.core.access import ssh_config
        from ptdesk.core.experiments import launch as launcher
        launched = launcher.launch(self, spec, progress)
        # Another workstation of this home with the same name: which alias reaches which (the
        # home's config knows every workstation; the Site of one does not).
        namesake = ssh_config.namesake_warning(self.home_config, self.config, spec.name, spec.kind)
        return replace(launched, warnings=(namesake, *launched.warnings)) if namesake else launched

    def stop(self, name: str) -> Experiment:
        from ptdesk.core.experiments import operations
        return operations.stop(self, name)

    def start(self, name: str, gpus: str | None = None, queue: bool = False) -> Experiment:
        from ptdesk.core.experiments import operations
        return operations.start(self, name, gpus=gpus, queue=queue)

    def remove(self, name: str, force: bool = False) -> None:
        from ptdesk.core.experiments import operations
        operations.remove(self, name, force=force)

    def logs(self, name: str, tail: int | str = 100, follow: bool = False) -> Iterator[str]:
        from ptdesk.core.experiments import operations
        return operations.logs(self, name, tail=tail, follow=follow)

    def ssh_argv(self, name: str, command: Sequence[str] = (), options: Sequence[str] = ()) -> list[str]:
        """The OpenSSH command line that logs in to SSH experiment `name` through ptdesk's own ssh
        config (host key pinned, ptdesk's key only; `-F` so no other config can change that),
        running `command` there word by word (each quoted for the remote shell, as exec would take
        them), or a login shell when it is empty; `options` go before the name."""
        from ptdesk.core.access import ssh_config
        from ptdesk.core.base.models import status_word
        from ptdesk.core.kinds.ssh import SSH
        experiment = self.experiment(name)
        if experiment.kind != SSH.name:  # yours, maybe, but nothing to log in to
            raise PtdeskError(f"{name!r} is a {experiment.kind} experiment: it has no SSH login.",
                              f"Open its URL (ptdesk ls), or here through a tunnel: ptdesk forward {name}")
        if experiment.access is None:
            raise PtdeskError(f"{name!r} is not yours to log in to.", "Pick one of yours from: ptdesk ls")
        if experiment.status != "running":
            raise PtdeskError(f"{name!r} is {status_word(experiment.status)}, so nothing answers there.",
                              f"Start it first: ptdesk start {name}")
        path = ssh_config.refresh(self.config)
        return ["ssh", "-F", str(path), *options, ssh_config.alias(self.config, name),
                *(shlex.quote(word) for word in command)]

    def shell_argv(self, name: str) -> list[str]:
        """A terminal in experiment `name` (the dashboard's `t`): an SSH login for SSH experiments;
        for the others, `docker exec` as the experiment's person in /workspace, on this machine's
        engine only (a remote box's engine is not this docker CLI's)."""
        experiment = self.experiment(name)
        if experiment.kind == "ssh":
            return self.ssh_argv(name)
        if experiment.foreign or experiment.unverified or experiment.orphan:
            raise PtdeskError(f"{name!r} is not yours to open a shell in.", "Pick one of yours from: ptdesk ls")
        if self.is_remote:
            raise PtdeskError(f"A shell in {name!r} opens on {self.name} itself (docker exec there), not from here.",
                              "Use the terminal of its JupyterLab (its URL: c), or ssh to that workstation.")
        if experiment.status != "running":
            raise PtdeskError(f"{name!r} is not running, so no shell opens in it.",
                              f"Start it first: ptdesk start {name}")
        user = f"{self.config.uid}:{self.config.gid}"
        return ["docker", "exec", "-it", "-u", user, "-w", "/workspace", experiment.id, "bash", "-l"]

    def tunnel_argv(self, port: int, local: int) -> list[str]:
        """OpenSSH forwarding 127.0.0.1:LOCAL here to PORT as this remote workstation publishes it."""
        from ptdesk.core.access import tunnel
        from ptdesk.core.engine import remote
        home, entry = self.home_config, self.entry
        assert entry is not None
        return tunnel.forward_argv(remote.known_hosts_path(home), remote.identity_of(home, entry), entry,
                                   (self.config.bind_address, port), local)

    def ssh_config(self, install: bool = False, uninstall: bool = False) -> SshConfigState:
        """ptdesk's own ssh config, rewritten now; with `install` / `uninstall`, the Include line
        added to or taken out of ~/.ssh/config (only when asked: the person's file is theirs)."""
        from ptdesk.core.access import ssh_include
        return ssh_include.state(self.config, add_include=install, remove_include=uninstall)

    def log_stream(self, container_id: str, **options: Any) -> LogStream:
        """A background-read log stream of one container (the dashboard's log pane); `options` are
        LogStream.for_container's (on_batch, tail, max_lines, is_alive, ...). Not started yet."""
        from ptdesk.core.engine.logs import LogStream
        return LogStream.for_container(self.engine, container_id, **options)

    def container_stats(self, container_ids: Iterable[str]) -> dict[str, ContainerStats]:
        return self.stats_sampler.sample(container_ids)

    # --- GPUs ---------------------------------------------------------------------------------
    def gpu_snapshot(self, attribute: bool = True, use_engine: bool = True) -> GpuSnapshot:
        """One NVML sample; with `attribute`, each process named with its container, experiment and
        owner. The engine is asked only when some GPU process lives in a container (and `use_engine`:
        the dashboard says no while the engine is known to be down), so this works with the engine
        down or absent. Never raises for NVML: a broken GPU stack is a value."""
        from ptdesk.core.gpu import procmap
        snapshot = self.gpus.sample()
        if not attribute or self.entry:  # a remote sample arrives attributed (ptdesk.core.gpu.remote)
            return snapshot
        engine = self._engine_or_none() if use_engine and procmap.any_in_container(snapshot) else None
        store = self._store_or_none() if any(g.processes for g in snapshot.gpus) else None
        return procmap.attribute(snapshot, engine, self.config.instance, store=store)

    def gpu_inventory(self) -> GpuInventory:
        """What the ledger may give: GPUs used outside ptdesk beyond the threshold say so."""
        from ptdesk.core.sharing import claims
        return claims.inventory(self, self.gpu_snapshot())

    def gpu_claims(self, snapshot: GpuSnapshot, reader: HoldReader | None = None,
                   use_engine: bool = True) -> dict[int, GpuClaim]:
        """Per GPU: held by whom (busy or idle), reserved, unclaimed use (ptdesk.core.sharing.claims)."""
        from ptdesk.core.sharing import claims
        return claims.claims(self, snapshot, reader, use_engine)

    def _engine_or_none(self) -> Engine | None:
        with contextlib.suppress(PtdeskError):
            return self.engine
        return None

    def _store_or_none(self) -> Store | None:
        """The store names owners while the engine is away; one that cannot be opened means fewer
        names, never a failed sample (the list and the doctor report that problem); one that does not
        exist yet is not made by looking at GPUs."""
        if "store" not in self.__dict__ and not self.config.state_path.exists():
            return None
        with contextlib.suppress(PtdeskError, OSError):
            return self.store
        return None

    # --- keeping it clean ---------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        from ptdesk.core.experiments import reconcile
        return reconcile.reconcile(self)

    def watch_events(self, on_event: Callable[[ContainerEvent], None],
                     on_engine: Callable[[bool, str | None], None], stop: threading.Event,
                     on_reconcile: Callable[[object], None] = lambda report: None) -> None:
        """Follow the engine's events until `stop` is set: cleanup on die/destroy, reconnect with
        `since=`, reconciliation on reconnect (ptdesk.core.experiments.lifecycle)."""
        from ptdesk.core.experiments.lifecycle import EventWatcher
        EventWatcher(self, on_event=on_event, on_engine=on_engine, on_reconcile=on_reconcile).run(stop)

    def idle_states(self) -> list[IdleState]:
        from ptdesk.core.experiments import cull
        return cull.idle_states(self)

    def cull(self, limit: float, dry_run: bool = False) -> list[IdleState]:
        from ptdesk.core.experiments import cull
        return cull.cull(self, limit, dry_run=dry_run)

    def cull_plan(self, window: GpuWindow, whole_window: bool = True) -> list[CullPlan]:
        """Where each running experiment stands with the configured cull (nothing changed)."""
        from ptdesk.core.experiments import culling
        return culling.plan(self, window, whole_window=whole_window)

    def cull_round(self, window: GpuWindow) -> list[tuple[CullPlan, Said | None]]:
        """Warn the newly idle, stop those past their deadline (ptdesk watch runs this)."""
        from ptdesk.core.experiments import culling
        return culling.run(self, window)

    def keep(self, name: str, seconds: float | None = None) -> float:
        from ptdesk.core.experiments import culling
        return culling.keep(self, name, seconds)

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        return self.store.audit_log(limit)

    def check_environments(self) -> list[ExperimentEnvironment]:
        """Live-check every running experiment (refreshes the listing's "changed" marks)."""
        from ptdesk.core.environment import drift
        return drift.check_all(self, self.list_experiments(all=False))

    # --- what the dashboard asks besides (tui) ------------------------------------------------
    # Thin doors added for the dashboard, kept together so they are easy to fold into the above.
    def default_owner(self) -> str:
        """Who a new experiment belongs to when nobody is named (what make_spec uses too)."""
        from ptdesk.core.experiments import spec as specs
        return specs.current_user()

    def kind_titles(self) -> dict[str, str]:
        """Kind name -> how people call it ("ssh" -> "SSH"), in the registry's order (those `new` makes)."""
        from ptdesk.core.kinds import door_kinds
        return {kind.name: kind.title for kind in door_kinds()}

    def image_for(self, kind: str) -> str:
        """The image a new experiment of `kind` runs unless another is named."""
        from ptdesk.core.kinds import get_kind
        return get_kind(kind).image(self.config)

    def herald(self) -> Herald:
        """Finds and says this workstation's events once (ptdesk watch runs one)."""
        from ptdesk.core.notify.herald import Herald
        return Herald(self)

    def notices(self, after: float) -> list[dict]:
        """Notices said to this person after `after` (by ptdesk watch), for the dashboard."""
        from ptdesk.core.notify.herald import journal
        return journal(self.config, after)

    def gpu_history(self, uuid: str) -> tuple[float | None, ...]:
        """Recent utilisation of one GPU (percent, None where unread), oldest first."""
        return self.gpus.history(uuid)

    def idle_gpus(self, history: Sequence[GpuSnapshot], for_seconds: float = 1800.0) -> dict[str, float]:
        """GPUs holding memory at 0 % utilisation for `for_seconds` in `history`: label -> seconds
        (the judge `cull` uses; pure, no I/O)."""
        from ptdesk.core.experiments import cull
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
        from ptdesk.core.base import keys
        return keys.read_public_key_file(path)

    def container_running(self, container_id: str) -> bool:
        """Whether the container exists and runs (the log pane's check on a quiet follow)."""
        data = self.engine.try_inspect(container_id)
        return bool(data and data.get("State", {}).get("Running"))
