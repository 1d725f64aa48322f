"""Jobs run and failed per person, for the usage report, from the job records this home keeps.

Batch jobs are experiments of kind "job" in the person's store; until that kind exists there are no
such records and every count is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptdesk.core.site import Site

JOB_KIND = "job"
FAILED = frozenset({"failed", "timed-out", "timed_out", "timeout", "error", "oom"})


def count_job_records(site: Site, start: float, end: float) -> dict[str, tuple[int, int]]:
    """Owner -> (jobs run, jobs failed) among this home's job records created in [start, end)."""
    if not site.config.state_path.exists():
        return {}  # nothing was ever launched from this home: no store made just to count
    counts: dict[str, tuple[int, int]] = {}
    for record in site.store.experiments():
        if record.kind != JOB_KIND or not start <= record.created < end:
            continue
        run, failed = counts.get(record.owner, (0, 0))
        counts[record.owner] = (run + 1, failed + (record.status in FAILED))
    return counts
