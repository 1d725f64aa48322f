"""A job's peak GPU memory: what its processes held at once, noted in its record while it runs.

NVML lists each GPU's processes with their memory and ptdesk's sampler attributes them to their
container (ptdesk.core.gpu.procmap). Whoever looks at the GPUs while jobs run — the box's watcher
(`ptdesk watch`, each usage sample) and `ptdesk jobs` — folds the sum over the job's processes into
its record's `peak_gpu_memory`, which only grows; the record keeps it after the container is gone.
Nothing is sampled when no job of this home runs with GPUs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.base.gpu_models import GpuSnapshot
from ptdesk.core.jobs import record as records

if TYPE_CHECKING:
    from ptdesk.core.site import Site

JOB = "job"


def note(site: Site, snapshot: GpuSnapshot | None = None) -> dict[str, int]:
    """Fold what NVML says now into the running GPU jobs' peaks; job name -> bytes its processes
    hold now. `snapshot`: one the caller read already (else one is read, only when needed)."""
    running = [r for r in site.store.experiments() if r.kind == JOB and r.gpus and r.container_id
               and r.status not in ("queued", "launching")]
    if not running:
        return {}
    snapshot = snapshot or site.gpu_snapshot()
    if not snapshot.available:
        return {}
    now: dict[str, int] = {}
    for experiment in running:
        cid = experiment.container_id or ""
        used = sum(p.used_memory or 0 for g in snapshot.gpus for p in g.processes
                   if p.container and cid.startswith(p.container[:12]))
        now[experiment.name] = used
        job = records.load(site.config, experiment.name)
        if job is not None and not job.ended and used > (job.peak_gpu_memory or 0):
            records.update(site.config, experiment.name, peak_gpu_memory=used)
    return now
