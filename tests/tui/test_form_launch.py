"""Launching from the form on the real engine: the SSH result at 160×45, the new row selected,
stopped means stopped; a launch the memory limit kills says so and puts the cursor on Memory."""

from __future__ import annotations

from textual.widgets import Input, Select

from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.collaborators import Collaborators
from ptdesk.tui.screens.details import Details
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.screens.prompt import Prompt, Report
from tests.support.helpers import JUPYTER_IMAGE, SSH_IMAGE, require_image
from tests.support.tuihelpers import nvml_scenarios, open_form, screen_text, settle

SIZE = (160, 45)


async def drawn(pilot, app: PtdeskApp, needle: str) -> str:
    """The screen's text once it shows `needle` (drawn, not only set on the widgets)."""
    await settle(pilot, lambda: needle in screen_text(app), message=f"{needle!r} on screen")
    return screen_text(app)


async def _form(pilot, app: PtdeskApp, kind: str) -> NewExperiment:
    form = await open_form(pilot, app)
    if kind != form.kind:
        form.query_one("#kind", Select).value = kind
    await settle(pilot, lambda: form.query_one("#name", Input).value.startswith(f"alice-{kind}"),
                 message="a suggested name")
    return form


async def test_ssh_from_the_form_result_fits_new_row_selected_stopped_is_stopped(tui_desk, engine, nvml,
                                                                                 monkeypatch, tmp_path):
    require_image(engine, SSH_IMAGE)
    nvml(nvml_scenarios.no_driver())
    home = tmp_path / "home"  # the person's ~/.ssh/config, which the form offers to extend
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host old\n    HostName example.org\n")
    monkeypatch.setenv("HOME", str(home))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        # Another experiment first, selected: after the launch the selection must move off it.
        await settle(pilot, lambda: app.main.listed)
        form = await _form(pilot, app, "ssh")
        form.query_one("#cpus", Input).value = "1"
        form.query_one("#name", Input).focus()
        await pilot.press("enter")
        await settle(pilot, lambda: form.result is not None or (not form.busy and form._steps), timeout=120,
                     message="the launch")
        assert form.result is not None, str(form.query_one("#steps").render())
        name = form.result.name
        text = await drawn(pilot, app, "Copy (c)")
        for button in ("#copy", "#close"):  # the result's buttons are on screen, not scrolled away
            region = form.query_one(button).region
            assert region.height and region.bottom <= SIZE[1], (button, region)
        assert "Host key: SHA256:" in text and "Copy (c)" in text, text
        # Asked once: add ptdesk's Include line to ~/.ssh/config, only on a yes.
        assert form.include_offer is not None and "Press a to add it" in text
        assert "Include" not in (home / ".ssh" / "config").read_text()
        await pilot.press("a")
        await settle(pilot, lambda: "Include" in (home / ".ssh" / "config").read_text(), message="the Include")
        assert "Host old" in (home / ".ssh" / "config").read_text()  # nothing else changed
        assert tui_desk.ssh_include_offer() is None  # never asked again
        # From now on `ssh NAME` works: the result says that, not the long line it replaces.
        await settle(pilot, lambda: f"Connect: ssh {name}" in " ".join(screen_text(app).split()),
                     message="the short connect line")
        assert "ssh -i" not in screen_text(app)
        # At 80×24 the result (connect line, host key, buttons) still fits: the fields made way.
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: app.size.width == 80 and len(screen_text(app).splitlines()) <= 24)
        await pilot.pause()
        small = " ".join(screen_text(app).split())
        assert "Host key: SHA256:" in small and "Copy (c)" in small and "Close (esc)" in small, small
        await pilot.resize_terminal(*SIZE)
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)
        await settle(pilot, lambda: (s := app.main.table.selected) is not None and s.name == name,
                     timeout=30, message="the new row selected")
        await pilot.press("i")
        details = await settle(pilot, lambda: isinstance(app.screen, Details) and app.screen)
        assert details.experiment.name == name
        await pilot.press("escape")

        # A collaborator granted this experiment, exported: the report carries the CLI's warnings.
        await pilot.press("k")
        people = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await pilot.press("a", *"dave", "enter")
        await settle(pilot, lambda: isinstance(app.screen, Report), message="dave added")
        await pilot.press("escape")
        await settle(pilot, lambda: "dave" in people.items)
        await pilot.press("g")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
        assert prompt.query_one(Input).value == name  # the experiment selected on the main screen
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, Report), timeout=60, message="granted")
        await pilot.press("escape")
        await pilot.press("e")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
        prompt.query_one("#folder", Input).value = str(tmp_path / "for-dave")
        await pilot.press("enter")
        report = await settle(pilot, lambda: isinstance(app.screen, Report) and app.screen, message="exported")
        exported = str(report.body)
        assert "Warning: bind_address is 127.0.0.1" in exported and f"hosts: {name}" in exported
        assert (tmp_path / "for-dave" / "ssh_config").exists()
        await pilot.press("escape", "escape")
        await settle(pilot, lambda: app.screen is app.main)

        # Stopped: the table says stopped, offers no connect line, and c says why.
        await pilot.press("s")
        await settle(pilot, lambda: app.main.table.selected.status == "exited", timeout=60, message="stopped")
        row = await drawn(pilot, app, "stopped")
        assert "exited" not in row
        before = app.clipboard
        await pilot.press("c")
        await settle(pilot, lambda: any("stopped" in n.message for n in app._notifications), message="why not")
        assert app.clipboard == before


async def test_out_of_memory_at_launch_is_explained_and_memory_focused(tui_desk, engine, nvml):
    require_image(engine, JUPYTER_IMAGE)
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        form = await _form(pilot, app, "jupyter")
        form.query_one("#memory", Input).value = "8m"
        form.query_one("#cpus", Input).value = "1"
        form.query_one("#name", Input).focus()
        await pilot.press("enter")
        await settle(pilot, lambda: not form.busy and form._steps and "✗" in str(form.query_one("#steps").render()),
                     timeout=120, message="the launch to fail")
        steps = str(form.query_one("#steps").render())
        assert "memory limit (8m)" in steps and "without any output" not in steps, steps
        # Focus moves once the re-enabled inputs are drawn (Textual applies it after the refresh).
        await settle(pilot, lambda: app.focused is form.query_one("#memory", Input), message="Memory focused")
        assert tui_desk.store.experiments() == []
