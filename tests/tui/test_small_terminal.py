"""The dashboard at 80×24 (and 100 columns): what fits, what wraps, and that `?` stays reachable.

Read from the app's own screenshot (tuihelpers.screen_lines), on the real engine.
"""

from __future__ import annotations

from textual.widgets import DataTable

from ptdesk.core.base.models import Access, Experiment, Limits
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.details import Details
from tests.support.tuihelpers import nvml_scenarios, open_form, screen_lines, screen_text, settle

SMALL = (80, 24)
HOST_KEY = "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SSH_LINE = ("ssh -i /root/.local/share/ptdesk/keys/alice-train-box-1/id_ed25519 -p 49153 -o IdentitiesOnly=yes "
            "-o UserKnownHostsFile=/root/.local/share/ptdesk/known_hosts/alice-train-box-1 "
            "-o StrictHostKeyChecking=yes -o HostKeyAlias=ptdesk-alice-train-box-1 ptdesk@127.0.0.1")


def footer(app: PtdeskApp) -> str:
    return screen_lines(app)[-1]


async def test_80x24_shows_every_row_before_the_log_and_keeps_help_reachable(tui_desk, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    for i in range(4):
        sleeper(f"small-{i}", owner="ann")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, lambda: len(app.main.experiments) == 4, message="four rows")
        await settle(pilot, lambda: "small-3" in screen_text(app) and screen_lines(app)[-1].strip(),
                     message="the rows and the footer drawn")
        text = screen_text(app)
        print(text)
        assert all(f"small-{i}" in text for i in range(4)), "every row is on screen"
        table = app.main.query_one(DataTable)
        assert table.region.height >= 4 + 3  # four rows, the header and the border
        assert app.main.log_pane.region.height >= 5  # the log still has a few lines
        line = footer(app)
        assert line.startswith("? Help") and "k Collab" in line, line
    async with PtdeskApp(tui_desk).run_test(size=(100, 30)) as pilot:
        app2 = pilot.app
        await settle(pilot, lambda: app2.main.listed and "Collab" in footer(app2), message="the footer at 100")
        line = footer(app2)
        assert "Help" in line and "Collab" in line, line


async def test_80x24_details_wrap_the_whole_ssh_command(tui_desk, nvml):
    nvml(nvml_scenarios.no_driver())
    experiment = Experiment(name="alice-train-box-1", id="0123456789abcdef", kind="ssh", owner="alice",
                            image="ptdesk/ssh:latest", status="running", gpus=(0,), created=1_700_000_000,
                            limits=Limits("8g", 2.0, 4096, "1g"),
                            access=Access(SSH_LINE, (("Connect", SSH_LINE),
                                                     ("Host key", HOST_KEY))))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, lambda: app.main.listed)
        app.push_screen(Details(experiment))
        await settle(pilot, lambda: isinstance(app.screen, Details))
        await settle(pilot, lambda: HOST_KEY in screen_text(app), message="the details drawn")
        lines = screen_lines(app)
        print("\n".join(lines))
        dialog = app.screen.query_one(".dialog")
        assert dialog.region.right <= SMALL[0] and dialog.region.x >= 0
        # The whole command is on screen, in order, only wrapped (the dialog's frame and the
        # wrapping's spaces taken away, nothing of it is missing).
        inside = "".join(line[dialog.region.x + 1:dialog.region.right - 1] for line in lines)
        squeezed = "".join(inside.split())
        assert "".join(SSH_LINE.split()) in squeezed
        assert HOST_KEY in squeezed


async def test_80x24_form_shows_launch_and_cancel(tui_desk, nvml):
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SMALL) as pilot:
        form = await open_form(pilot, app)
        await settle(pilot, lambda: "Cancel (esc)" in screen_text(app), message="the form drawn")
        text = screen_text(app)
        print(text)
        assert "Launch (enter)" in text and "Cancel (esc)" in text
        assert "Shared memory" in text and "Shared mem8g" not in text
        for name in ("launch", "cancel"):
            button = form.query_one(f"#{name}")
            assert button.region.bottom <= SMALL[1] and button.region.height
