"""The GPU queue in the dashboard: the form's "Wait for GPUs" files the launch in the queue, and
its row says `queued #1` with why it waits as its connect text, wide and at 80×24."""

from __future__ import annotations

from helpers import SSH_IMAGE, require_image
from textual.widgets import Checkbox, Input
from tuihelpers import nvml_scenarios, screen_text, settle

from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.new_experiment import NewExperiment


async def test_wait_for_gpus_queues_the_launch_and_the_row_says_why(tui_desk, engine, nvml, sleeper) -> None:
    require_image(engine, SSH_IMAGE)
    nvml(nvml_scenarios.idle(1))
    sleeper("bob-train", owner="bob", devices=("0",))  # holds the only GPU
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
        text = " ".join(screen_text(app).split())
        assert "waits is queued #1: needs GPU 0: 0 free; GPU 0 held by 'bob-train'" in text, text
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)
        await settle(pilot, lambda: "queued #1" in screen_text(app), timeout=30, message="the queued row")
        assert "GPU 0 held by 'bob-train'" in screen_text(app)
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: app.size.width == 80 and len(screen_text(app).splitlines()) <= 24)
        await pilot.pause()
        assert "queued #1" in screen_text(app)
