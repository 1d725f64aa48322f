"""The GPU queue in the dashboard: the form's "Wait for GPUs" files the launch in the queue, and
its row says `queued #2` (one waits before it) with why it waits as its connect text, wide and at 80×24."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Checkbox, DataTable, Input

from ptdesk.core.gpu_desk import GpuDesk
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.new_experiment import NewExperiment
from tests.support.helpers import SSH_IMAGE, require_image
from tests.support.tuihelpers import nvml_scenarios, screen_text, settle


async def test_wait_for_gpus_queues_the_launch_and_the_row_says_why(tui_desk, engine, nvml, sleeper) -> None:
    require_image(engine, SSH_IMAGE)
    nvml(nvml_scenarios.idle(1))
    sleeper("bob-train", owner="bob", devices=("0",))  # holds the only GPU
    # One request waits already: the form's is the second in the queue.
    tui_desk.launch(tui_desk.make_spec("ssh", name="first", gpus="0", cpus=1, queue=True))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the first list")
        await pilot.press("n")
        form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
        await settle(pilot, lambda: form.query_one("#name", Input).value, message="a suggested name")
        form.query_one("#name", Input).value = "waits"
        form.query_one("#cpus", Input).value = "1"
        form.query_one("#gpus", Input).value = "0"
        form.query_one("#queue", Checkbox).value = True
        form.query_one("#name", Input).focus()
        await pilot.press("enter")
        await settle(pilot, lambda: form.result is not None or (not form.busy and form._steps), timeout=120,
                     message="the launch")
        assert form.result is not None, str(form.query_one("#steps").render())
        await settle(pilot, lambda: "is queued #2" in screen_text(app), message="the result drawn")
        text = " ".join(screen_text(app).split())
        assert "waits is queued #2: needs GPU 0: 0 free; GPU 0 held by 'bob-train'" in text, text
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)
        await settle(pilot, lambda: "queued #2" in screen_text(app), timeout=30, message="the queued rows")
        rows = [line for line in screen_text(app).splitlines() if "queued #" in line]
        assert any("first" in r and "queued #1" in r and "GPU 0 held by 'bob-train'" in r for r in rows), rows
        assert any("waits" in r and "queued #2" in r and "GPU 0 held by 'bob-train'" in r for r in rows), rows
        app.main.table.select_name("waits")
        # A queued request never ran: its log pane says so, not that a log "ended".
        await settle(pilot, lambda: "queued: its log starts when it does" in screen_text(app), message="the log pane")
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: app.size.width == 80 and len(screen_text(app).splitlines()) <= 24)
        await pilot.pause()
        assert "queued #1" in screen_text(app) and "queued #2" in screen_text(app)


async def _add(pilot, app, gpus: str, start: str, end: str) -> None:
    from ptdesk.tui.screens.prompt import Prompt

    await pilot.press("a")
    prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
    for field, value in (("gpus", gpus), ("start", start), ("end", end)):
        prompt.query_one(f"#{field}", Input).value = value
    prompt.query_one("#gpus", Input).focus()
    await pilot.press("enter")
    return prompt


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_reservations_view_add_end_cancel_and_an_overlap_said_in_the_dialog(tui_desk, engine, nvml,
                                                                                  size) -> None:
    from ptdesk.core.sharing.reservations import zone
    from ptdesk.tui.screens.reservations import Reservations

    require_image(engine, SSH_IMAGE)
    nvml(nvml_scenarios.idle(2))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the first list")
        await pilot.press("r")
        screen = await settle(pilot, lambda: isinstance(app.screen, Reservations) and app.screen)
        await settle(pilot, lambda: "free" in screen_text(app), message="the timeline")
        assert f"next 48 h (times in {zone()})" in screen_text(app)  # the workstation's zone, said
        first = await _add(pilot, app, "0", "now", "1h")
        try:
            await settle(pilot, lambda: app.screen is screen and "active" in screen_text(app), message="a started one")
        except AssertionError:
            raise AssertionError(screen_text(app) + str(first.query_one("#prompt-error").render())) from None
        # The same slot again: refused in the dialog, naming who holds it; nothing booked.
        prompt = await _add(pilot, app, "0", "now", "30m")
        await settle(pilot, lambda: "reserved by" in str(prompt.query_one("#prompt-error").render()),
                     message="the overlap in the dialog")
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen)
        assert len(screen.items) == 1
        # A started one can be ended now (c would refuse: it is not a future one).
        await pilot.press("e")
        await settle(pilot, lambda: not screen.items, message="ended")
        await _add(pilot, app, "1", "tomorrow 9:00", "tomorrow 10:00")
        await settle(pilot, lambda: "future" in screen_text(app), message="a future one")
        screen.query_one(DataTable).move_cursor(row=1)  # GPU 0 free, then GPU 1's
        await pilot.press("c")
        await settle(pilot, lambda: app.screen is not screen)
        await pilot.press("y")
        await settle(pilot, lambda: app.screen is screen and not screen.items, message="cancelled")
        # What is left is the ended one's record: the past stays as it was.
        left = GpuDesk(tui_desk).reservations()
        assert [(r.gpus, r.end <= time.time()) for r in left] == [((0,), True)]
