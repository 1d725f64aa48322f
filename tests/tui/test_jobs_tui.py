"""Batch jobs in the dashboard at 80×24: j opens the job form and submits, the job is a row (kind,
status, then how it ended), its log follows live and stays readable after the end, X cancels, and
the end is a notice. Real engine; NVML from a scenario."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from ptdesk.tui.app import PtdeskApp
from tests.support.tuihelpers import nvml_scenarios, screen_text, settle

# Prints a line, then waits; on SIGINT says so and exits 5 (a training loop that saves and stops).
SCRIPT = "echo first-line; trap 'echo got-int; exit 5' INT; while true; do sleep 0.1; done"


async def test_a_job_from_the_form_runs_is_cancelled_with_x_and_keeps_its_log(tui_desk, nvml, tmp_path: Path,
                                                                              engine) -> None:
    nvml(nvml_scenarios.healthy(gpus=1))
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.sh").write_text(SCRIPT + "\n")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        await settle(pilot, lambda: main.listed, message="the list")
        await pilot.press("j")
        form = app.screen
        error = form.query_one("#prompt-error")
        # A mistake is said; Enter with the command emptied says that instead (it did nothing, the
        # older error stayed on screen).
        form.query_one("#time_limit", Input).value = "soon"
        form.query_one("#command", Input).value = "true"
        await pilot.press("enter")
        await settle(pilot, lambda: "'soon' is not a duration" in str(error.render()), message="the error")
        form.query_one("#command", Input).value = ""
        await pilot.press("enter")
        await settle(pilot, lambda: "The command is empty" in str(error.render())
                     and "soon" not in str(error.render()), message="the empty command said")
        form.query_one("#time_limit", Input).value = ""
        for field, value in (("command", "bash job.sh"), ("gpus", "none"), ("code", str(code))):
            form.query_one(f"#{field}", Input).value = value
        form.query_one("#command", Input).focus()
        await pilot.press("enter")
        name = "alice-job-1"
        await settle(pilot, lambda: any(e.name == name and e.status == "running" for e in main.experiments),
                     timeout=60, message="the job's row, running")
        await settle(pilot, lambda: main.table.select_name(name), message="the job's row selected")
        await settle(pilot, lambda: "first-line" in main.log_pane.lines, message="its log, live")
        row = next(e for e in main.experiments if e.name == name)
        assert row.kind == "job"

        await pilot.press("X")
        # Said at once: the SIGINT..SIGKILL grace can keep the row running for a while.
        assert any(f"Cancelling {name}" in n.message for n in app._notifications)
        await settle(pilot, lambda: any(e.name == name and e.status == "cancelled" for e in main.experiments),
                     message="the row to say cancelled")
        [ended] = [e for e in main.experiments if e.name == name]  # one row: the job, not its container too
        assert ended.connect.startswith("exit 5 after")
        await settle(pilot, lambda: main.table.select_name(name) and "got-int" in main.log_pane.lines,
                     message="the kept log after the end")
        assert main.log_pane.state.startswith("kept log")
        # The top bar counts the ended job's row as a job, not as an experiment.
        await settle(pilot, lambda: "1 job (0 running)" in str(app.query_one("#topbar").render()),
                     message="the top bar to count the job")
        assert "0 experiments (0 running)" in str(app.query_one("#topbar").render())
        await settle(pilot, lambda: any("job 'alice-job-1' cancelled" in n.title for n in app._notifications),
                     message="a notice of its end")


async def test_the_job_forms_error_is_in_view_at_80x24(tui_desk, nvml, tmp_path: Path, engine) -> None:
    # The form is taller than 24 rows: its error is below the last field, and Enter seemed to do nothing.
    nvml(nvml_scenarios.healthy(gpus=1))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the list")
        await pilot.press("j")
        form = app.screen
        for field, value in (("command", "true"), ("gpus", "none"), ("like", "nosuch"), ("code", str(tmp_path))):
            form.query_one(f"#{field}", Input).value = value
        form.query_one("#command", Input).focus()
        await pilot.press("enter")
        await settle(pilot, lambda: "No experiment named 'nosuch'" in screen_text(app),
                     message="the error, on the screen")
        assert form.focused is form.query_one("#like", Input)  # the field at fault keeps the cursor
