"""The container settings every experiment gets, whatever its kind: the labels that make it
ptdesk's, and the hardened host config (the README's security model; DESIGN.md)."""

from __future__ import annotations

from ptdesk.config import Config
from ptdesk.core.base.models import (
    LABEL_GPUS,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_OWNER,
    LABEL_WORKSPACE,
    LaunchSpec,
)
from ptdesk.core.engine.sdk import docker_sdk
from ptdesk.core.host import workspace
from ptdesk.core.kinds import Plan

WORKSPACE_MOUNT = workspace.MOUNT


def labels(config: Config, spec: LaunchSpec, gpus: tuple[int, ...]) -> dict[str, str]:
    """The labels that make it ptdesk's (sealed by the launch: ptdesk.core.access.seal)."""
    return {
        LABEL_MANAGED: "1", LABEL_INSTANCE: config.instance, LABEL_KIND: spec.kind, LABEL_OWNER: spec.owner,
        LABEL_NAME: spec.name, LABEL_GPUS: ",".join(map(str, gpus)), LABEL_WORKSPACE: str(spec.workspace),
    }


def host_config(config: Config, spec: LaunchSpec, plan: Plan, gpus: tuple[int, ...], port: int) -> dict:
    """The hardening every container gets (the README's security model)."""
    docker = docker_sdk()
    limits = spec.limits
    host_config: dict = {
        "port_bindings": {plan.container_port: (config.bind_address, port)} if plan.container_port else {},
        "binds": {str(spec.workspace): {"bind": WORKSPACE_MOUNT, "mode": "rw"},
                  **{host: {"bind": inside, "mode": mode} for host, inside, mode in spec.mounts}},
        "cap_drop": ["ALL"],
        "cap_add": list(plan.cap_add),
        "security_opt": ["no-new-privileges:true"],
        "privileged": False,
        "init": True,
        "pids_limit": limits.pids,
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,  # no swap beyond the memory limit
        "nano_cpus": int(limits.cpus * 1e9),
        "shm_size": limits.shm_size,
        "tmpfs": dict(plan.tmpfs),
        # Logs stay bounded however chatty the experiment is.
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "20m", "max-file": "3"}),
    }
    if gpus:
        host_config["device_requests"] = [
            docker.types.DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])]
    return host_config
