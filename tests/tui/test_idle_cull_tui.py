"""The idle cull in the dashboard: `u` shows what it would stop and when (as `ptdesk cull
--dry-run`), `x` keeps the selected experiment (as `ptdesk keep NAME`), there and on the main screen."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import DataTable

from ptdesk.config import load_config
from ptdesk.core.experiments.culling import CullPlan
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.idle_cull import IdleCull
from tests.support.helpers import run_cli
from tests.support.tuihelpers import nvml_scenarios, screen_lines, screen_text, settle


def _shown(app) -> str:
    return " ".join(str(n.message) for n in app._notifications)


def _cells(screen: IdleCull) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(cell) for cell in table.get_row_at(0)] if table.row_count else []


async def test_the_idle_view_shows_the_cull_and_x_keeps_an_experiment(ptdesk_env, engine, nvml, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    home = Path(ptdesk_env["PTDESK_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[cull]\nidle = "1h"\nkeep_max = "2h"\n')
    nvml(nvml_scenarios.healthy(gpus=1))
    code, _, err = run_cli(["new", "ssh", "--name", "lab", "--gpus", "none"], ptdesk_env)
    assert code == 0, err
    ws = Workstation(load_config(ptdesk_env))
    app = PtdeskApp(ws)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, lambda: app.main.listed and app.main.table.selected, message="the list")
            await pilot.press("I")
            screen = await settle(pilot, lambda: isinstance(app.screen, IdleCull) and app.screen, message="the view")
            row = await settle(pilot, lambda: _cells(screen), message="its row")
            assert row[0] == "lab" and row[3] == "-"  # just started: active, nothing to stop
            await pilot.press("x")
            await settle(pilot, lambda: "lab is kept until" in _shown(app), message="the keep")
            await settle(pilot, lambda: _cells(screen)[3] == "kept", message="the row kept")
            assert _cells(screen)[4].startswith("kept until ")
            # At 80 columns How wraps within the screen: none of it is cut off (it was).
            long = CullPlan("a-long-experiment-name", "jupyter", "alice", 7300.0, "warned", deadline=time.time(),
                            detail="a GPU at 5 % or more within 30m (or not read yet)")
            screen._loaded([long])
            await settle(pilot, lambda: "a-long-experiment-name" in screen_text(app), message="the long row drawn")
            shown = " ".join(" ".join(screen_text(app).split()).split("│"))
            assert all(word in shown.split() for word in long.detail.split()), screen_text(app)
            assert all(len(line) <= 80 for line in screen_lines(app))
            screen.action_reload()
            await settle(pilot, lambda: _cells(screen) and _cells(screen)[0] == "lab", message="its row again")
            await pilot.press("escape")
            await settle(pilot, lambda: app.screen is app.main, message="the main screen")
            app.clear_notifications()
            await pilot.press("x")  # the same key on the main screen keeps the selected one
            await settle(pilot, lambda: "lab is kept until" in _shown(app), message="the keep from the main screen")
        assert [a.action for a in ws.audit_log() if a.action == "keep"] == ["keep", "keep"]
    finally:
        ws.close()
