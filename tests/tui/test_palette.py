"""The command palette offers what applies to the screen it was opened from, like the keys do."""

from __future__ import annotations

import io

from rich.console import Console

from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.collaborators import Collaborators
from tests.support.tuihelpers import nvml_scenarios, settle


def _plain(prompt: object) -> str:
    """An option's text, whatever renderable the palette wrapped it in."""
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(prompt)
    return console.export_text()


SELECTION_COMMANDS = {"New experiment", "Experiment details", "Copy connect line", "Stop or start",
                      "Remove experiment", "Logs full-screen", "Collaborators", "Filter experiments", "Open a shell"}


async def test_palette_on_other_screens_has_no_selection_commands(tui_desk, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    sleeper("ivy-box", owner="ivy")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, lambda: [e.name for e in app.main.experiments] == ["ivy-box"])
        main = {c.title for c in app.get_system_commands(app.screen)}
        assert SELECTION_COMMANDS | {"Keys", "Quit"} <= main

        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        here = {c.title for c in app.get_system_commands(screen)}
        assert not here & SELECTION_COMMANDS, here & SELECTION_COMMANDS
        assert {"Keys", "Quit"} <= here

        # Through the real palette: searching for "Remove experiment" from here finds nothing to run.
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: app.screen is not screen, message="the palette")
        palette = app.screen
        await pilot.press(*"Remove", "space", *"experiment")

        def titles() -> list[str]:
            options = palette.query_one("CommandList")
            return [_plain(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await settle(pilot, lambda: any("No matches found" in t for t in titles()), message="the search to end")
        assert not any("Remove experiment" in t for t in titles()), titles()
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen)
        assert [e.name for e in app.main.experiments] == ["ivy-box"]


async def test_the_palette_jumps_to_an_experiment_by_name(tui_desk, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    for name in ("aa-first", "bb-second", "cc-third"):
        sleeper(name)
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, lambda: len(app.main.experiments) == 3)
        assert app.main.table.selected.name == "aa-first"
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: app.screen is not app.main, message="the palette")
        palette = app.screen
        await pilot.press(*"cc-third")

        def titles() -> list[str]:
            options = palette.query_one("CommandList")
            return [_plain(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await settle(pilot, lambda: any("Go to cc-third" in t for t in titles()), message="the jump offered")
        await pilot.press("enter")
        await settle(pilot, lambda: app.main.table.selected.name == "cc-third", message="cc-third selected")
