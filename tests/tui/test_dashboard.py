"""The dashboard on the real engine, driven through Pilot: what a person at the desk relies on."""

from __future__ import annotations

import io
import os
from urllib.parse import parse_qs, urlparse

from textual.widgets import Input, Log

from ptdesk.core.kinds.jupyter import api_status
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.confirm import Confirm
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.widgets.gpu_panel import GpuPanel, GpuRow
from ptdesk.tui.widgets.log_pane import LogPane
from tests.support.helpers import JUPYTER_IMAGE, require_image
from tests.support.tuihelpers import nvml_scenarios, settle

SIZE = (160, 48)


def names(app: PtdeskApp) -> list[str]:
    return [e.name for e in app.main.table.experiments.values() if app.main.table.matches(e)]


def log_text(app: PtdeskApp) -> str:
    return "\n".join(app.query_one(LogPane).query_one(Log).lines)


async def test_launch_jupyter_from_the_form_then_remove_it(tui_desk, engine, nvml, tmp_path):
    """n → Enter launches a real JupyterLab on the person's project folder; its row, URL and log
    appear; d → y removes it all and the project folder stays."""
    require_image(engine, JUPYTER_IMAGE)
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the first list")
        await pilot.press("n")
        form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
        name_field = form.query_one("#name", Input)
        await settle(pilot, lambda: name_field.value == "alice-jupyter-1", message="a suggested free name")
        assert form.query_one("#owner", Input).value == "alice"
        assert form.query_one("#gpus", Input).value == "auto"
        project = tmp_path / "project"
        project.mkdir()
        (project / "notes.txt").write_text("kept")
        form.query_one("#workspace", Input).value = str(project)
        await pilot.press("enter")
        await settle(pilot, lambda: form.result is not None or (not form.busy and form._steps), timeout=120,
                     message="the launch to finish")
        assert form.result is not None, str(form.query_one("#steps").render())
        steps = str(form.query_one("#steps").render())
        assert "Waiting until the service lets you in" in steps
        assert form.result.workspace == str(project)
        url = form.result.access.fields["url"]
        assert url.startswith("http://127.0.0.1:") and "token=" in url
        parsed = urlparse(url)  # the URL works: its token opens the API
        assert api_status(parsed.hostname or "", parsed.port or 0, parse_qs(parsed.query)["token"][0])[0] == 200
        result_text = str(form.query_one("#result-text").render())
        assert url in result_text
        # The project folder was made by root here, and the container user is not root: said at once,
        # in the launch's own words (with the CLI's Fix:).
        assert ("not writable by uid" in result_text) == (os.getuid() == 0)
        assert ("Fix: chown" in result_text) == (os.getuid() == 0)
        await pilot.press("c")  # the copy button has focus: c copies the URL
        assert app.clipboard == url
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, NewExperiment))

        # The row arrives through the event stream, running, with its URL.
        await settle(pilot, lambda: "alice-jupyter-1" in names(app), message="the row")
        row = next(e for e in app.main.table.experiments.values() if e.name == "alice-jupyter-1")
        await settle(pilot, lambda: app.main.table.experiments[row.id].status == "running", message="running")
        assert app.main.table.experiments[row.id].connect == url
        # The log pane follows the selected (only) row: Jupyter's own start-up lines arrive.
        await settle(pilot, lambda: "Jupyter Server" in log_text(app), timeout=30, message="log lines")
        # Per-container CPU/memory come from the cgroup files, second sample onwards.
        await settle(pilot, lambda: (s := app.main.table.stats.get(row.id)) and s.memory and s.cpu_percent is not None,
                     message="cgroup stats")

        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await settle(pilot, lambda: "alice-jupyter-1" not in names(app), timeout=30, message="the row to go")
        assert engine.try_inspect(row.id) is None
        assert tui_desk.store.experiment("alice-jupyter-1") is None
        assert not (tui_desk.config.home / "experiments" / "alice-jupyter-1").exists()  # the token file too
        assert (project / "notes.txt").read_text() == "kept"  # the person's folder is never touched


async def test_gpu_panel_shows_who_uses_each_gpu(tui_desk, engine, sleeper, nvml):
    """A process of an experiment container on GPU 0 is shown as that experiment and its owner."""
    cid = sleeper("bob-train", owner="bob")
    pid = engine.top_pids(cid)[0]
    nvml(nvml_scenarios.healthy(pids=(pid,), gpus=2))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(GpuPanel)
        # Rows and their cells: a row is mounted before its cells are.
        await settle(pilot, lambda: len(panel.query(GpuRow)) == 2 and len(panel.query(".gpu-users")) == 2,
                     message="two GPU rows")
        await settle(pilot, lambda: "bob-train (bob)" in str(panel.query(GpuRow).first().query_one(".gpu-users")
                                                                .render()), message="the owner on GPU 0")
        assert "2 GPUs" in str(app.query_one("#topbar").render())
        row = panel.query(GpuRow).first()
        figures, heat = (str(row.query_one(cell).render()) for cell in (".gpu-figures", ".gpu-heat"))
        assert "37%" in figures and "45°C" in heat and "120/700 W" in heat
        # The sparkline keeps the history the sampler recorded (data reassigned each sample).
        before = app.main.gpu_samples
        await settle(pilot, lambda: app.main.gpu_samples >= before + 2, message="more samples")
        spark = panel.query(GpuRow).first().query_one(".gpu-spark")
        assert len(spark.data) >= 3


async def test_at_80_columns_the_gpu_panel_still_says_who_uses_each_gpu(tui_desk, engine, sleeper, nvml):
    """On a narrow terminal the model, temperature, power and sparkline give way; the holder stays
    on screen (at 80 columns the fixed figures used to fill the whole row)."""
    cid = sleeper("bob-train", owner="bob")
    nvml(nvml_scenarios.healthy(pids=(engine.top_pids(cid)[0],), gpus=2))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(GpuPanel)
        await settle(pilot, lambda: len(panel.query(".gpu-users")) == 2, message="two GPU rows")
        users = panel.query(GpuRow).first().query_one(".gpu-users")
        await settle(pilot, lambda: "bob-train (bob)" in str(users.render()), message="the owner on GPU 0")
        await pilot.pause()
        assert users.region.width >= len("bob-train (bob)") and users.region.right <= panel.region.right
        assert not any(cell.display for cell in panel.query(".gpu-heat, .gpu-spark, .gpu-name"))


async def test_no_gpu_is_one_calm_line_and_the_rest_works(tui_desk, sleeper, nvml):
    sleeper("carol-cpu", owner="carol")
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.gpu_samples and app.main.listed)
        reason = str(app.query_one(".gpu-reason").render())
        assert "driver is installed but not loaded" in reason
        assert not app.query_one(GpuPanel).query(GpuRow)
        assert names(app) == ["carol-cpu"]


async def test_logs_follow_the_selection_and_pause_and_filter(tui_desk, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    sleeper("a-logs", script="i=0; while :; do i=$((i+1)); echo alpha-$i; sleep 0.05; done")
    sleeper("b-logs", script="i=0; while :; do i=$((i+1)); echo beta-$i; [ $((i % 5)) = 0 ] && echo beta-ERROR-$i;"
                              " sleep 0.05; done")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(LogPane)
        await settle(pilot, lambda: len(names(app)) == 2)
        first = app.main.table.selected
        assert first is not None
        word = "alpha" if first.name == "a-logs" else "beta"
        other = "beta" if word == "alpha" else "alpha"
        await settle(pilot, lambda: f"{word}-3" in log_text(app), message=f"{word} lines")
        old_stream = pane.stream
        await pilot.press("down")
        await settle(pilot, lambda: f"{other}-3" in log_text(app), message=f"{other} lines after moving")
        assert word not in log_text(app)
        assert old_stream is not None and old_stream.closed  # switching closed the old stream
        if other != "beta":
            await pilot.press("up")
            await settle(pilot, lambda: "beta-3" in log_text(app))

        # l: the log full-screen; escape brings the dashboard back.
        await pilot.press("l")
        assert app.screen.maximized is pane
        await pilot.pause()
        assert pane.size.height >= SIZE[1] - 4  # the whole screen but the header and footer
        await pilot.press("escape")
        assert app.screen.maximized is None

        # Filter: only matching lines, new ones included.
        await pilot.press("f")
        await pilot.press(*"ERROR")
        await settle(pilot, lambda: pane.filter_text == "ERROR")
        await settle(pilot, lambda: log_text(app) and all("ERROR" in line for line in log_text(app).splitlines()),
                     message="filtered lines")
        await pilot.press("escape")
        assert not pane.query_one("#log-filter").display

        # Pause: nothing new is written while paused; resuming shows what arrived meanwhile.
        await pilot.press("p")
        frozen = log_text(app)
        await settle(pilot, lambda: pane.unseen >= 3, message="lines arriving while paused")
        assert log_text(app) == frozen
        await pilot.press("p")
        await settle(pilot, lambda: log_text(app) != frozen)
        assert "PAUSED" not in str(pane.query_one("#log-title").render())


async def test_filter_stop_start_and_errors_as_notifications(tui_desk, engine, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    # Owned by the workstation user (alice): ptdesk refuses to stop or start other people's containers.
    cid = sleeper("dora-one", owner="alice")
    sleeper("eve-two", owner="eve")
    # No event stream: the removal behind the dashboard's back below must not move the selection
    # before the key press arrives (each action reads the list again when it is done).
    app = PtdeskApp(tui_desk, watch_events=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: len(names(app)) == 2)
        await pilot.press("slash", *"eve")
        await settle(pilot, lambda: names(app) == ["eve-two"] and app.main.table.row_count == 1)
        await pilot.press("escape")  # drops the filter: nothing stays hidden behind a closed box
        await settle(pilot, lambda: app.main.table.row_count == 2)
        assert not app.query_one("#filter", Input).display

        app.main.table.move_cursor(row=app.main.table.get_row_index(cid))
        await pilot.press("s")  # running -> stop
        await settle(pilot, lambda: app.main.table.experiments[cid].status == "exited", timeout=30, message="stopped")
        assert not engine.inspect(cid)["State"]["Running"]
        await pilot.press("s")  # stopped -> start
        await settle(pilot, lambda: app.main.table.experiments[cid].status == "running", timeout=30, message="started")

        # Someone else removes it behind the dashboard's back; stopping it now is a PtdeskError,
        # shown as a notification with cause and hint, and the app keeps running.
        engine.remove(cid, force=True)
        await pilot.press("s")
        await settle(pilot, lambda: any(n.severity == "error" for n in app._notifications), message="an error")
        note = next(n for n in app._notifications if n.severity == "error")
        assert "dora-one" in note.message and "ptdesk ls --all" in note.message
        await settle(pilot, lambda: "dora-one" not in names(app), message="the row to go")
        assert app.is_running

        # eve's container belongs to eve's ptdesk: stopping it is refused, and removing it asks
        # with her name in the question.
        eve = next(e for e in app.main.table.experiments.values() if e.name == "eve-two")
        assert eve.foreign
        app.main.table.move_cursor(row=app.main.table.get_row_index(eve.id))
        await pilot.press("d")
        confirm = await settle(pilot, lambda: isinstance(app.screen, Confirm) and app.screen)
        assert "belongs to eve's ptdesk" in confirm.detail
        await pilot.press("n")
        assert engine.inspect(eve.id)["State"]["Running"]


async def test_details_help_and_collaborators_screens(tui_desk, sleeper, nvml):
    from ptdesk.tui.screens.collaborators import Collaborators
    from ptdesk.tui.screens.details import Details
    from ptdesk.tui.screens.help import Help
    from ptdesk.tui.screens.prompt import Prompt

    nvml(nvml_scenarios.no_driver())
    sleeper("hank-box", owner="hank", gpus="")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: names(app) == ["hank-box"])
        await pilot.press("i")
        details = await settle(pilot, lambda: isinstance(app.screen, Details) and app.screen)
        from rich.console import Console

        from ptdesk.tui.screens.details import details_table

        console = Console(width=120, record=True, file=io.StringIO())
        console.print(details_table(details.experiment))
        text = console.export_text()
        assert "hank" in text and "Container" in text and details.experiment.id[:12] in text
        await pilot.press("escape")
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, Help))
        await pilot.press("escape")

        # The command palette offers the dashboard's actions.
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "New experiment" in commands and "Collaborators" in commands

        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        # The main screen's keys act on the selected experiment; here they must do nothing.
        await pilot.press("d", "s")
        await pilot.pause()  # let the key presses be handled; nothing may open
        assert app.screen is screen and app.screen_stack[-1] is screen
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, Prompt))
        await pilot.press(*"bob", "enter")  # the name field has focus; no key file: ptdesk makes a pair
        await settle(pilot, lambda: "bob" in screen.items, message="bob in the table")
        assert screen.items["bob"].fingerprint.startswith("SHA256:")
        await pilot.press("escape")  # the report of what was done
        # Granting access to an experiment that does not exist: cause and hint in the dialog, which
        # stays open with what was typed, no crash.
        await pilot.press("g")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
        prompt.query_one(Input).value = "no-such-box"
        await pilot.press("enter")
        await settle(pilot, lambda: "no-such-box" in str(prompt.query_one("#prompt-error").render()),
                     message="the error in the dialog")
        assert app.screen is prompt and prompt.query_one(Input).value == "no-such-box"
        assert app.is_running


async def test_collaborators_selection_survives_a_reload(tui_desk, nvml):
    """After an action the list reloads; the next key must still act on the person chosen."""
    from textual.widgets import DataTable

    from ptdesk.core.collaborators import grants
    from ptdesk.tui.screens.collaborators import Collaborators

    nvml(nvml_scenarios.no_driver())
    for name in ("ann", "bob", "cy"):
        grants.add(tui_desk, name)
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await settle(pilot, lambda: len(screen.items) == 3, message="three collaborators")
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("cy"))
        assert screen.selected.name == "cy"
        grants.add(tui_desk, "abe")  # a new row: the list is rebuilt under the cursor
        await pilot.press("R")  # reload, as every action does when it finishes
        await settle(pilot, lambda: len(screen.items) == 4, message="the reload")
        assert screen.selected.name == "cy"


async def test_a_failed_launch_leaves_the_form_ready_to_correct(tui_desk, nvml):
    """A bad value is reported in the form, nothing is created, and typing goes straight back into it."""
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
        form.query_one("#memory", Input).value = "lots"
        await pilot.press("enter")
        await settle(pilot, lambda: not form.busy and "lots" in str(form.query_one("#steps").render()),
                     message="the error in the form")
        assert app.focused is form.query_one("#memory", Input)  # the field at fault
        assert form.result is None and tui_desk.store.experiments() == []
