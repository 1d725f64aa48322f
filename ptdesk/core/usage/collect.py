"""One box's figures for a range, read from its history; several boxes' into one report document."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ptdesk.core.usage import history
from ptdesk.core.usage.jobs import count_job_records
from ptdesk.core.usage.report import Figures, figures_of, to_json

if TYPE_CHECKING:
    from ptdesk.core.site import Site


def box_figures(site: Site, start: float, end: float) -> tuple[Figures, dict[str, tuple[int, int]]]:
    """This box's figures for [start, end), and the jobs this home ran there."""
    return figures_of(site.name, history.read_days(site, start, end), start, end), count_job_records(site, start, end)


def document(boxes: Iterable[tuple[Figures, Mapping[str, tuple[int, int]]]], start: float, end: float) -> dict:
    """The report of several boxes together (people and images summed over them)."""
    together, jobs = Figures(), {}
    for figures, counted in boxes:
        together.add(figures)
        for person, (run, failed) in counted.items():
            had = jobs.get(person, (0, 0))
            jobs[person] = (had[0] + run, had[1] + failed)
    return to_json(together, start, end, jobs)
