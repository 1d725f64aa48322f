"""Jobs run and failed per person, for the usage report, from the batch-job records this home keeps
(`PTDESK_HOME/jobs/`, which outlive the jobs' containers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptdesk.core.jobs import record as records

if TYPE_CHECKING:
    from ptdesk.core.site import Site

# How a job ended that counts as failed; "cancelled" is a person's choice, not a failure.
FAILED = frozenset({"failed", "timed out"})


def count_job_records(site: Site, start: float, end: float) -> dict[str, tuple[int, int]]:
    """Owner -> (jobs run, jobs failed) among this workstation's job records that started in
    [start, end); a job that never started (cancelled while queued) did not run."""
    counts: dict[str, tuple[int, int]] = {}
    for job in records.all_records(site.config):
        if job.workstation != site.name or job.started is None or not start <= job.started < end:
            continue
        run, failed = counts.get(job.owner, (0, 0))
        counts[job.owner] = (run + 1, failed + (job.status in FAILED))
    return counts
