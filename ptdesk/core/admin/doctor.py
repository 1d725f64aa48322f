"""The checks behind `ptdesk doctor`: can ptdesk launch here, and if not, why and what to do.

Each check ends ok, warn (works, but something is missing: no GPU runtime, no NVML, image out of
date) or fail (ptdesk cannot work safely). Exit 0 only when no check failed, which implies the
engine answers, both images are present and the state database is sound.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import stat
from dataclasses import asdict, dataclass
from typing import Literal

from ptdesk.config import LOCAL, Config, load_config
from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.images import image_status, image_tag
from ptdesk.core.environment.recorded import summary_of
from ptdesk.core.fleet import Fleet
from ptdesk.core.gpu.driver_compat import driver_warning
from ptdesk.core.gpu.nvml import GpuSampler
from ptdesk.core.host.ports import free_port
from ptdesk.core.kinds import REGISTRY, kind_names
from ptdesk.core.store.state import integrity_problems
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None


@dataclass
class Report:
    checks: list[Check]
    engine_version: str | None = None
    api_version: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict:
        return {"ok": self.ok, "engine": {"version": self.engine_version, "api_version": self.api_version},
                "checks": [asdict(c) for c in self.checks]}


def check_config() -> tuple[Check, Config | None]:
    try:
        config = load_config()
    except PtdeskError as exc:
        return Check("config", "fail", exc.message, exc.hint), None
    where = str(config.config_path) if config.config_path.exists() else "defaults (no config.toml)"
    return Check("config", "ok", f"{where}; PTDESK_HOME={config.home}, instance {config.instance}"), config


def check_engine(report: Report, remote: Workstation | None = None) -> tuple[Check, Engine | None]:
    try:
        engine = remote.engine if remote is not None else Engine.connect(timeout=10)
        version = engine.version()
    except PtdeskError as exc:
        return Check("engine", "fail", exc.message, exc.hint), None
    report.engine_version = version.get("Version")
    report.api_version = version.get("ApiVersion")
    detail = (f"Docker {report.engine_version}, API {report.api_version} "
              f"(client uses {engine.api.api_version})")
    return Check("engine", "ok", detail), engine


def check_gpu_runtime(engine: Engine) -> Check:
    try:
        info = engine.info()
    except PtdeskError as exc:
        return Check("gpu-runtime", "warn", exc.message, exc.hint)
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return Check("gpu-runtime", "ok", f"nvidia runtime present (default: {info.get('DefaultRuntime')})")
    return Check("gpu-runtime", "warn", f"no nvidia runtime in the engine (runtimes: {', '.join(runtimes)}); "
                 "experiments can only start with --gpus none",
                 "Install the NVIDIA Container Toolkit, then: nvidia-ctk runtime configure --runtime=docker")


def check_images(engine: Engine, config: Config) -> list[Check]:
    checks = []
    on = f" --on {config.workstation}" if config.workstation != LOCAL else ""  # the box the hint is for
    for target in kind_names():
        tag = image_tag(config, target)
        try:
            status = image_status(engine, target, tag)
        except PtdeskError as exc:
            checks.append(Check(f"image-{target}", "fail", exc.message, exc.hint))
            continue
        if not status.present:
            optional = REGISTRY.entry(target).optional_image  # type: ignore[union-attr]
            checks.append(Check(f"image-{target}", "warn" if optional else "fail",
                                f"{tag} is missing" + (f" (only `ptdesk new {target}` needs it)" if optional else ""),
                                f"Build it with: ptdesk images build {target}{on}"))
        elif status.up_to_date is False:
            checks.append(Check(f"image-{target}", "warn",
                                f"{tag} is out of date (built from older Dockerfiles)",
                                f"Rebuild it with: ptdesk images build {target}{on}"))
        else:
            note = "" if status.up_to_date else " (not built by `ptdesk images build`: freshness unknown)"
            checks.append(Check(f"image-{target}", "ok", f"{tag} present, created {status.created}{note}"))
    return checks


def check_nvml() -> Check:
    """NVML present or why not, in the sampler's own words; a warning at most (the dashboard works
    without GPUs)."""
    return check_nvml_driver()[0]


def check_nvml_driver(remote: Workstation | None = None) -> tuple[Check, str | None]:
    """The NVML check and the driver version it read (None without NVML); of a remote
    workstation, through its GPU sampler."""
    if remote is not None:
        snapshot = remote.gpu_snapshot()
    else:
        sampler = GpuSampler()
        try:
            snapshot = sampler.sample()
        finally:
            sampler.close()
    return _nvml_check(snapshot), snapshot.driver if snapshot.available else None


def _nvml_check(snapshot: GpuSnapshot) -> Check:
    if not snapshot.available:
        return Check("nvml", "warn", f"NVML unavailable: {snapshot.reason}",
                     "Without an NVIDIA driver the GPU panel stays empty; --gpus none still works.")
    physical = [g for g in snapshot.gpus if g.parent is None]
    return Check("nvml", "ok", f"driver {snapshot.driver}, {len(physical)} GPU(s)")


def image_cudas(engine: Engine, config: Config) -> dict[str, str]:
    """Tag -> the CUDA its build recorded (images without PyTorch record "none")."""
    out = {}
    for target in kind_names():
        tag = image_tag(config, target)
        try:
            summary = summary_of(engine.image_info(tag))
        except PtdeskError:
            continue
        if summary is not None:
            out[tag] = summary.cuda
    return out


def check_driver_cuda(driver: str | None, cudas: dict[str, str]) -> Check | None:
    """Is the host's driver new enough for each image's CUDA? (No check without NVML or CUDA images.)"""
    if driver is None or not any(c != "none" for c in cudas.values()):
        return None
    warnings = [w for w in (driver_warning(driver, cuda, tag) for tag, cuda in cudas.items()) if w]
    if warnings:
        return Check("driver-cuda", "warn", warnings[0], "Update the NVIDIA driver (the table is in "
                     "ptdesk/core/gpu/driver_compat.py), or build FROM a base with an older CUDA.")
    wanted = ", ".join(f"CUDA {c} ({t})" for t, c in cudas.items() if c != "none")
    return Check("driver-cuda", "ok", f"driver {driver} is new enough for {wanted}")


def check_state(config: Config) -> Check:
    path = config.state_path
    if not path.exists():
        return Check("state", "ok", f"{path} not created yet (made on first use)")
    try:
        problems = integrity_problems(path)
    except sqlite3.DatabaseError as exc:
        return Check("state", "fail", f"{path} cannot be read: {exc}",
                     "Move the file away and run `ptdesk doctor` again; running containers are re-adopted.")
    if problems:
        return Check("state", "fail", f"{path} is damaged: {'; '.join(problems[:3])}",
                     "Move the file away; ptdesk re-adopts running containers from their labels.")
    return Check("state", "ok", f"{path} passes integrity_check")


def check_keys(config: Config) -> Check:
    """keys/ must be 0700 and every private file in it 0600 (public *.pub files may be readable)."""
    folder = config.keys_dir
    if not folder.exists():
        return Check("keys", "ok", f"{folder} not created yet (made on first use)")
    loose: list[str] = []
    for path in [folder, *sorted(folder.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir() and mode != 0o700:
            loose.append(f"{path} is {mode:04o} (want 0700)")
        elif path.is_file() and not path.name.endswith(".pub") and mode & 0o077:
            loose.append(f"{path} is {mode:04o} (want 0600)")
    if loose:
        more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
        return Check("keys", "fail", "; ".join(loose[:3]) + more,
                     f"Tighten them: chmod 700 {folder} and chmod 600 on each private key file.")
    return Check("keys", "ok", f"{folder} is 0700, private files 0600")


def run_checks(workstation: str | None = None) -> Report:
    """Every check, of the local engine, or (`workstation`: a [workstations.NAME]) of that box:
    its engine over SSH, its GPU runtime and images, its GPUs through its sampler, its own store
    and keys (the bind address is that machine's, checked by every launch there)."""
    report = Report(checks=[])
    cudas: dict[str, str] = {}
    config_check, config = check_config()
    report.checks.append(config_check)
    remote = _remote(config, workstation)
    engine_check, engine = check_engine(report, remote)
    report.checks.append(engine_check)
    try:
        if engine is not None:
            report.checks.append(check_gpu_runtime(engine))
            if config is not None:
                report.checks += check_images(engine, remote.config if remote else config)
                cudas = image_cudas(engine, remote.config if remote else config)
        if remote is None or engine is not None:  # a remote's GPUs come through its engine
            nvml, driver = check_nvml_driver(remote)
            report.checks.append(nvml)
        else:
            driver = None
        report.checks += [c for c in (check_driver_cuda(driver, cudas),) if c is not None]
        if config is not None:
            own = remote.config if remote else config
            report.checks += [*([] if remote else [check_bind_address(config)]), check_state(own), check_keys(own)]
            if engine is not None:
                report.checks.append(check_unverified(remote or Workstation(config)))
    finally:
        if remote is not None:
            remote.close()
        elif engine is not None:
            engine.close()
    return report


def check_unverified(ws: Workstation) -> Check:
    """Containers labelled as this home's that it cannot prove it made (not sealed here): listed
    read-only as `unverified`, said once here rather than on every command."""
    try:
        found = ws.reconcile().unverified
    except PtdeskError as exc:
        return Check("unverified", "warn", f"could not compare the engine with the store ({exc.message})")
    finally:
        if ws.entry is None:
            ws.close()
    if not found:
        return Check("unverified", "ok", "every container labelled as this home's is sealed by it")
    return Check("unverified", "warn", f"{len(found)} container(s) carry this home's labels but not its seal, so "
                 f"nothing is handed out for them (ls marks them unverified): {', '.join(found)}",
                 "If nobody you know made them, remove them: docker rm -f CONTAINER")


def _remote(config: Config | None, workstation: str | None) -> Workstation | None:
    if workstation in (None, LOCAL):
        return None
    if config is None:  # the config check failed: which workstation that is cannot be known
        raise PtdeskError(f"Cannot check workstation {workstation}: the configuration does not load.",
                          "Run ptdesk doctor without --on to see why.")
    Fleet(config).check([workstation])  # an unknown name: the sentence every --on says
    return Workstation(config, config.workstations[workstation])


def check_bind_address(config: Config) -> Check:
    """Ports are published on bind_address: an address this host does not have fails every launch."""
    try:
        free_port(config.bind_address)
    except OSError as exc:
        return Check("bind-address", "fail", f"bind_address {config.bind_address} is not usable here "
                     f"({exc.strerror})", "Use 127.0.0.1 or an address of this machine (ip -brief address).")
    if ipaddress.ip_address(config.bind_address).is_unspecified:
        return Check("bind-address", "warn", f"ports are published on {config.bind_address}: every address of "
                     "this host, so anyone who can reach this machine reaches every experiment's port",
                     "Set bind_address to the one address collaborators reach (or 127.0.0.1).")
    return Check("bind-address", "ok", f"ports are published on {config.bind_address}")
