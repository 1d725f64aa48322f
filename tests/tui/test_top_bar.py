"""The dashboard's top bar in a narrow terminal: what gives way is the engine's version, then the
"ptdesk" label, then the host name, never the counts people read it for (at 80 columns with jobs it
used to end in "2 jobs (1" and lost the GPU count)."""

from __future__ import annotations

from ptdesk.core.base.models import Experiment
from ptdesk.tui.boxes import Boxes


def _boxes(names: tuple[str, ...] = ("local",)) -> Boxes:
    boxes = Boxes(names)
    state = boxes[names[0]]
    state.engine_up, state.version, state.gpu_count = True, "20.10.24+dfsg1", 2
    state.experiments = (
        Experiment("alice-notebook", "c1", "jupyter", "alice", "img", "running"),
        Experiment("bob-train", "c2", "ssh", "bob", "img", "exited"),
        Experiment("alice-job-1", "c3", "job", "alice", "img", "running"),
        Experiment("alice-job-2", "", "job", "alice", "img", "succeeded"),
    )
    return boxes


def test_a_wide_bar_says_everything() -> None:
    bar = str(_boxes().top_bar("gpu-box-01", "default", "local", width=160))
    assert bar == ("ptdesk · gpu-box-01 · Docker 20.10.24+dfsg1 · 2 experiments (1 running) · "
                   "2 jobs (1 running) · 2 GPUs")


def test_at_80_columns_the_counts_stay_and_the_version_goes_first() -> None:
    bar = str(_boxes().top_bar("gpu-box-01", "default", "local", width=78))
    assert len(bar) <= 78
    assert bar.endswith("2 experiments (1 running) · 2 jobs (1 running) · 2 GPUs")
    assert "20.10" not in bar and "gpu-box-01 · Docker" in bar


def test_narrower_still_the_label_then_the_host_give_way() -> None:
    bar = str(_boxes().top_bar("a-rather-long-host-name.example.org", "default", "local", width=78))
    assert len(bar) <= 78
    assert bar == "Docker · 2 experiments (1 running) · 2 jobs (1 running) · 2 GPUs"


def test_an_unreachable_workstation_is_never_what_gives_way() -> None:
    boxes = _boxes(("local", "box"))
    boxes["box"].engine_up = False
    bar = str(boxes.top_bar("gpu-box-01", "default", "local", width=78))
    assert "2 workstations (box unreachable)" in bar and bar.endswith("2 GPUs")
