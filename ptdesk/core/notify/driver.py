"""A GPU driver changed under running experiments: their CUDA processes keep the old library
mapped and fail or misbehave until restarted, so the owner hears it (once per change, per box).

Which driver each running GPU experiment runs with is kept in the store's meta, per experiment:
"<container id> <driver version>", written when ptdesk first sees it running (a restart is a new
container and starts over). A different version read by NVML later is the event.
"""

from __future__ import annotations

from ptdesk.core.notify.deliver import Notice
from ptdesk.core.site import Site

DRIVER = "driver.with."


def driver_changes(site: Site) -> list[tuple[str, Notice]]:
    """One look: the running GPU experiments whose driver is not the one they started with, each
    as (its once-key, its notice); the Herald says them."""
    running = [r for r in site.store.experiments() if r.status == "running" and r.gpus and r.container_id]
    if not running:
        return []  # no NVML read when nothing could be hurt
    driver = site.gpu_snapshot().driver
    if not driver:
        return []  # NVML does not answer now: not a change
    out: list[tuple[str, Notice]] = []
    for record in running:
        seen = (site.store.get_meta(DRIVER + record.name) or "").split(" ", 1)
        if len(seen) != 2 or seen[0] != record.container_id:
            site.store.set_meta(DRIVER + record.name, f"{record.container_id} {driver}")
            continue
        if seen[1] != driver:
            site.store.set_meta(DRIVER + record.name, f"{record.container_id} {driver}")
            out.append((f"driver:{record.container_id}:{seen[1]}:{driver}",
                        driver_notice(record.name, seen[1], driver)))
    return out


def driver_notice(name: str, was: str, now: str) -> Notice:
    return Notice("driver", f"ptdesk: the GPU driver changed under '{name}'",
                  f"The NVIDIA driver is {now} now; '{name}' started with {was}. Its CUDA programs may fail "
                  f"until it is restarted: save your work, then ptdesk stop {name} && ptdesk start {name}.")
