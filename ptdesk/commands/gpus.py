"""`ptdesk gpus`: what every GPU is doing and whose process is on it (like nvidia-smi, with owners)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import click

from ptdesk.commands.common import json_option, pass_workstation, table
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.base.units import human_bytes
from ptdesk.core.sharing.claims import GpuClaim
from ptdesk.core.workstation import Workstation

HEADERS = ("GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "PID", "GPU MEM", "OWNER", "EXPERIMENT / CONTAINER")
ERROR_TEXT = {
    "lost": "the driver lost this GPU; it needs a reset (nvidia-smi -r) or a reboot",
    "no permission": "NVML may not read this GPU; check the permissions on /dev/nvidia*",
}


@click.command("gpus")
@json_option
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@pass_workstation
def gpus(ws: Workstation, as_json: bool, watch: bool) -> None:
    """Show every GPU, its load, and the processes on it with their container and owner."""
    if not watch:
        snapshot = ws.gpu_snapshot()
        _show(snapshot, ws.gpu_claims(snapshot), as_json, where=ws.name)
        return
    said = None
    try:
        while True:
            snapshot = ws.gpu_snapshot()
            if not as_json and not snapshot.available:
                # Nothing moves without a driver: the sentence once (and again only if it changes).
                if snapshot.reason != said:
                    click.echo(render(snapshot))
                said = snapshot.reason
            else:
                said = None
                if not as_json:
                    click.clear()
                _show(snapshot, ws.gpu_claims(snapshot), as_json, compact=True, where=ws.name)
            time.sleep(1.0)  # the refresh period itself, not a wait for some condition
    except KeyboardInterrupt:
        return  # Ctrl-C is how --watch ends: not an error


def _show(snapshot: GpuSnapshot, claims: Mapping[int, GpuClaim], as_json: bool, compact: bool = False,
          where: str = "local") -> None:
    if as_json:
        data = {**snapshot.to_json(), "workstation": where}
        for gpu in data["gpus"]:  # held by whom, reserved, unclaimed use (ptdesk.core.sharing.claims)
            gpu.update((claims.get(gpu["index"]) or GpuClaim(gpu["index"])).to_json())
        click.echo(json.dumps(data) if compact else json.dumps(data, indent=2))
    else:
        click.echo(render(snapshot, claims))


def render(snapshot: GpuSnapshot, claims: Mapping[int, GpuClaim] | None = None) -> str:
    """The human table: one row per GPU (and MIG instance), its processes on rows beneath it."""
    if not snapshot.available:
        return f"No GPU information: {snapshot.reason}"
    if not snapshot.gpus:
        return f"NVIDIA driver {snapshot.driver or 'unknown'}: no GPUs found."
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    claims = claims or {}
    for gpu in snapshot.gpus:
        claim = claims.get(gpu.index) if not gpu.is_mig else None
        rows.append(_gpu_row(gpu, claim))
        if gpu.error:
            notes.append(f"GPU {gpu.label}: {ERROR_TEXT.get(gpu.error, gpu.error)}.")
        if claim and claim.blocks:  # below the threshold, its process rows say enough
            notes.append(f"GPU {gpu.label}: unclaimed use, outside every ptdesk experiment: {claim.unclaimed_text()};"
                         " auto, any:N and the queue do not give it.")
        if claim and claim.reserved:
            notes.append(f"GPU {gpu.label}: reserved by {claim.reserved}.")
        if gpu.mig_mode:
            continue  # its processes are listed under its MIG instances
        rows.extend(_process_row(p) for p in gpu.processes)
    count = len(snapshot.physical)
    header = f"NVIDIA driver {snapshot.driver or 'unknown'}, {count} GPU{'s' if count != 1 else ''}"
    if not any(g.processes for g in snapshot.gpus):
        notes.append("No processes are using the GPUs.")
    return "\n".join([header, table(HEADERS, rows), *notes])


def _na(value: object, unit: str = "") -> str:
    return "N/A" if value is None else f"{value}{unit}"


def _gpu_row(gpu: GpuSample, claim: GpuClaim | None = None) -> tuple[str, ...]:
    if gpu.error:
        return (gpu.label, gpu.name, "ERR!", "ERR!", "ERR!", "ERR!", "", "", "", "")
    memory = (f"{human_bytes(gpu.memory_used)} / {human_bytes(gpu.memory_total)}"
              if gpu.memory_total is not None else "N/A")
    if gpu.power is None:
        power = "N/A"
    elif gpu.power_limit:
        power = f"{gpu.power:.0f} / {gpu.power_limit:.0f} W"
    else:
        power = f"{gpu.power:.0f} W"
    name = f"{gpu.name} [MIG]" if gpu.mig_mode else gpu.name
    # The GPU's own row says who holds it: an experiment holds a GPU whether or not it runs a process.
    holder = claim.holder if claim else None
    return (gpu.label, name, _na(gpu.utilization, "%"), memory, _na(gpu.temperature, "C"), power,
            "", "", holder.owner if holder else "", f"held: {claim.held_text()}" if claim and holder else "")


def _process_row(process: GpuProcess) -> tuple[str, ...]:
    if process.container is None and process.host_user is None:
        where = "not visible from here"  # another PID namespace, or the process just ended
    elif process.container is None:
        where = "host process"
    elif process.experiment:
        where = f"{process.experiment} ({process.container[:12]})"
    else:
        where = f"container {process.container[:12]}"
    owner = process.person or process.owner or process.host_user or "?"
    if process.person and process.owner and process.person != process.owner:
        owner = f"{process.person} (collaborator of {process.owner})"  # their own account
    util = "" if process.sm_utilization is None else f"{process.sm_utilization}%"
    return ("", "", util, "", "", "", str(process.pid),
            human_bytes(process.used_memory), owner, where)


COMMANDS = [gpus]
