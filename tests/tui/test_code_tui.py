"""VS Code in the browser in the dashboard, at 80×24: the form offers the kind (with its own image),
the details show the URL and the password whole, and `c` copies the URL."""

from __future__ import annotations

from textual.widgets import Input, Select

from ptdesk.core.base.models import Access, Experiment, Limits
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.details import Details
from tests.support.helpers import CODE_IMAGE
from tests.support.tuihelpers import nvml_scenarios, open_form, screen_lines, screen_text, settle

SMALL = (80, 24)
URL = "https://workstation-7.lab.example.org:49211/?folder=/workspace"
PASSWORD = "Zq3v8S1yX0m2Kp7Rt4Wd9Lf6Hc5Nb0Jg1Ae8Uo3Ii2"


async def test_the_form_offers_vs_code_with_its_image(tui_desk, nvml):
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SMALL) as pilot:
        form = await open_form(pilot, app)
        kinds = form.query_one("#kind", Select)
        assert ("VS Code", "code") in [(str(label), value) for label, value in kinds._options]
        kinds.value = "code"
        await settle(pilot, lambda: form.query_one("#name", Input).value.startswith("alice-code"),
                     message="a suggested name for the code kind")
        assert form.query_one("#image", Input).value == CODE_IMAGE
        await settle(pilot, lambda: "VS Code" in screen_text(app) and "Launch (enter)" in screen_text(app),
                     message="the form drawn")


async def test_80x24_details_show_the_url_and_password_and_c_copies_the_url(tui_desk, nvml):
    nvml(nvml_scenarios.no_driver())
    experiment = Experiment(name="alice-code-1", id="0123456789abcdef", kind="code", owner="alice",
                            image=CODE_IMAGE, status="running", created=1_700_000_000,
                            limits=Limits("8g", 2.0, 4096, "1g"),
                            access=Access(URL, (("Open", URL), ("Password", PASSWORD))))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, lambda: app.main.listed)
        app.push_screen(Details(experiment))
        await settle(pilot, lambda: isinstance(app.screen, Details))
        await settle(pilot, lambda: "Password" in screen_text(app), message="the details drawn")
        lines = screen_lines(app)
        dialog = app.screen.query_one(".dialog")
        inside = "".join("".join(line[dialog.region.x + 1:dialog.region.right - 1] for line in lines).split())
        assert URL in inside and PASSWORD in inside  # whole, only wrapped
        await pilot.press("c")
        await settle(pilot, lambda: app.clipboard == URL, message="the URL copied")
