"""`u`: the week's GPU use in the dashboard, at 80×24 — a bar per person (busy, held idle) and the
figures, read from the box's usage history on the engine."""

from __future__ import annotations

import time

from ptdesk.core.usage.recorder import UsageRecorder
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.usage import Usage, bars
from tests.core.test_usage_report import held, snapshot
from tests.support.helpers import SSH_IMAGE, require_image
from tests.support.tuihelpers import screen_lines, screen_text, settle


async def test_the_usage_view_shows_the_weeks_figures_with_a_bar_per_person(tui_desk, engine, nvml) -> None:
    require_image(engine, SSH_IMAGE)  # the box's history is a record container of it
    recorder = UsageRecorder()
    start = time.time() - 3 * 3600
    for n in range(120):  # one hour: alice's train 50 % busy on GPU 0, bob's notebook idle on GPU 1
        recorder.observe(start + (n + 1) * 30, snapshot({0: 50}), {0: held(0, "train", "alice", True),
                         1: held(1, "nb", "bob", False)}, {}, {"train": "pt", "nb": "jup"}, 30.0)
    recorder.flush(tui_desk)
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the first list")
        await pilot.press("u")
        screen = await settle(pilot, lambda: isinstance(app.screen, Usage) and app.screen)
        await settle(pilot, lambda: screen.report is not None, message="the figures")
        lines = screen_lines(app)
        alice = next(ln for ln in lines if ln.lstrip().startswith("alice ") and "held" in ln)
        bob = next(ln for ln in lines if ln.lstrip().startswith("bob ") and "held" in ln)
        assert "█" * 15 in alice and "░" not in alice and alice.rstrip().endswith("1.0 h held, 0.5 busy")
        assert "░" * 30 in bob and "█" not in bob and bob.rstrip().endswith("1.0 h held, 0.0 busy")
        text = screen_text(app)
        assert "█ busy  ▒ held, rest of it  ░ held while idle" in text and "Back" in text  # the key to the chart
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)


def test_a_week_of_jobs_without_gpu_time_is_not_said_as_nothing_recorded() -> None:
    person = {"person": "root", "held_gpu_hours": 0.0, "busy_gpu_hours": 0.0, "idle_held_gpu_hours": 0.0,
              "reserved_unused_gpu_hours": 0.0, "jobs": 1}
    said = bars([person]).plain
    assert "No GPU time held" in said and "Nothing recorded" not in said  # the row below counts the job
