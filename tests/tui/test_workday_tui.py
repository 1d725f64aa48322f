"""The team's day in the dashboard: a routine key rotation keeps a collaborator's work, and the
dialog says what the other answer would end."""

from __future__ import annotations

import subprocess
from pathlib import Path

from textual.widgets import Input

from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.collaborators import Collaborators
from ptdesk.tui.screens.confirm import Choose
from ptdesk.tui.screens.details import Details
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.screens.prompt import Prompt, Report
from ptdesk.tui.widgets.log_pane import LogPane
from tests.support.accounts_support import DETACH
from tests.support.helpers import wait_until
from tests.support.tuihelpers import nvml_scenarios, screen_text, settle

SIZE = (80, 24)


def loop_pids(ws: Workstation, experiment: str, account: str) -> set[int]:
    record = ws.store.experiment(experiment)
    assert record is not None and record.container_id
    rc, out = ws.engine.exec(record.container_id, ["ps", "-o", "pid=,comm=", "-u", account])
    return {int(pid) for pid, comm in (line.split() for line in out.decode().splitlines()) if comm == "sh"}


async def test_r_asks_routine_or_compromised_and_names_what_would_end(tui_desk: Workstation, nvml) -> None:
    nvml(nvml_scenarios.no_driver())
    launched = tui_desk.launch(tui_desk.make_spec("ssh", name="shared", cpus=1)).experiment
    bob = tui_desk.add_collaborator("bob")
    tui_desk.grant("bob", "shared")
    record = tui_desk.store.experiment("shared")
    assert record is not None and record.port and record.host_public_key and bob.identity_file
    login = try_login(tui_desk.config.connect_host, record.port, "bob", Path(bob.identity_file),
                      record.host_public_key, command=DETACH)
    assert login.ok, login
    running = loop_pids(tui_desk, launched.name, "bob")
    assert running

    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await settle(pilot, lambda: "bob" in screen.items, message="bob listed")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, Choose), message="the question")
        await settle(pilot, lambda: f"shared: {min(running)} sh" in screen_text(app), message="the processes named")
        assert "process(es) of" in screen_text(app)
        await pilot.press("r")  # routine
        await settle(pilot, lambda: isinstance(app.screen, Report), timeout=90, message="the rotation's report")
        assert loop_pids(tui_desk, "shared", "bob") == running  # the run goes on
        await pilot.press("escape")

        await settle(pilot, lambda: app.screen is screen)
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, Choose), message="the question again")
        await pilot.press("e")  # compromised
        await settle(pilot, lambda: isinstance(app.screen, Report), timeout=90, message="the second report")
        assert loop_pids(tui_desk, "shared", "bob") == set()


async def test_an_expired_collaborator_reads_expired(tui_desk: Workstation, nvml) -> None:
    nvml(nvml_scenarios.no_driver())
    tui_desk.add_collaborator("eve", expires="1s")
    wait_until(lambda: tui_desk.collaborators()[0].expired(), timeout=30, message="eve's key to expire")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await settle(pilot, lambda: "eve" in screen.items, message="eve listed")
        await settle(pilot, lambda: "expired" in screen_text(app), message="eve shown as expired")
        assert "N/A" not in screen_text(app)


async def test_grant_offers_the_ssh_experiments_and_an_own_key_rotation_asks_for_the_pub(
        tui_desk: Workstation, nvml, tmp_path: Path) -> None:
    nvml(nvml_scenarios.no_driver())
    tui_desk.launch(tui_desk.make_spec("ssh", name="lab-box", cpus=1))
    old, new = (_keypair(tmp_path, label) for label in ("old", "new"))
    tui_desk.add_collaborator("carol", tui_desk.public_key_from_file(f"{old}.pub"))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await settle(pilot, lambda: "carol" in screen.items, message="carol listed")
        await pilot.press("g")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen, message="grant")
        await settle(pilot, lambda: "Your SSH experiments here: lab-box" in screen_text(app), message="offered")
        assert prompt.query_one("#answer", Input).value == "lab-box"  # offered, not typed
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, Report), message="granted")
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen and screen.items["carol"].grants == ("lab-box",))

        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, Choose), message="routine or compromised")
        await pilot.press("r")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen, message="the .pub")
        prompt.query_one("#answer", Input).value = f"{new}.pub"
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, Report), timeout=60, message="rotated")
    record = tui_desk.store.collaborator("carol")
    assert record is not None
    assert record.public_key.split()[1] == Path(f"{new}.pub").read_text().split()[1]


def _keypair(folder: Path, label: str) -> Path:
    private = folder / label / "id_ed25519"
    private.parent.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private)], check=True)
    return private


async def test_details_say_who_is_logged_in(tui_desk: Workstation, nvml) -> None:
    nvml(nvml_scenarios.no_driver())
    tui_desk.launch(tui_desk.make_spec("ssh", name="busy-box", cpus=1))
    session = subprocess.Popen(tui_desk.ssh_argv("busy-box", ["sleep", "120"], options=("-o", "BatchMode=yes")),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        who = wait_until(lambda: next(e for e in tui_desk.list_experiments() if e.name == "busy-box").logged_in,
                         timeout=30, message="the login to be seen")
        app = PtdeskApp(tui_desk)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.main.listed)
            await pilot.press("i")
            await settle(pilot, lambda: isinstance(app.screen, Details), message="details")
            await settle(pilot, lambda: f"Logged in {', '.join(who)}" in " ".join(screen_text(app).split()),
                         message="who is logged in")
    finally:
        session.terminate()
        session.wait(10)


async def test_at_80x24_the_connect_column_and_a_filter_match_are_in_view(tui_desk: Workstation, nvml,
                                                                          sleeper) -> None:
    nvml(nvml_scenarios.no_driver())
    tui_desk.launch(tui_desk.make_spec("ssh", name="c80", cpus=1))
    sleeper("wide-log", script="printf 'x%.0s' $(seq 150); echo ' NEEDLE here'; sleep 3600")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed and len(app.main.table.experiments) == 2)
        # What people act on, on screen.
        await settle(pilot, lambda: "Connect" in screen_text(app) and "Environment" in screen_text(app),
                     message="the Connect and Environment columns")
        # The whole fingerprint of a collaborator is not what a 80-column table is for.
        tui_desk.add_collaborator("dan")
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await settle(pilot, lambda: "dan" in screen.items, message="dan listed")
        fingerprint = screen.items["dan"].fingerprint
        await settle(pilot, lambda: fingerprint[:19] + "…" in screen_text(app), message="the short fingerprint")
        assert fingerprint not in screen_text(app)
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)
        assert app.main.table.select_name("wide-log")
        pane = app.query_one(LogPane)
        await settle(pilot, lambda: pane.name_shown == "wide-log" and pane.lines, message="its log")
        await pilot.press("f", *"NEEDLE", "enter")
        await settle(pilot, lambda: "NEEDLE" in screen_text(app), message="the match in view")


async def test_a_cleared_name_says_what_an_empty_one_gets(tui_desk: Workstation, nvml) -> None:
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("n")
        form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
        field = form.query_one("#name", Input)
        await settle(pilot, lambda: field.value != "", message="the suggested name")
        field.value = ""
        await pilot.pause()
        assert field.placeholder == "empty: a free name is picked at launch"


async def test_stopped_experiments_are_said_once_with_how_to_start_them(tui_desk: Workstation, nvml,
                                                                        engine) -> None:
    """As after an engine restart: the containers came back stopped, and the dashboard says so."""
    nvml(nvml_scenarios.no_driver())
    made = tui_desk.launch(tui_desk.make_spec("ssh", name="was-running", cpus=1)).experiment
    engine.stop(made.id)
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await settle(pilot, lambda: any("was-running: select one and press s to start it." in n.message
                                        for n in app._notifications), message="the notice")
        assert sum("was-running" in n.message for n in app._notifications) == 1


async def test_a_pending_rotation_is_marked_as_the_cli_marks_it(tui_desk: Workstation, nvml) -> None:
    """Was: `collab ls` showed `shared*` (and now says what it means), the dashboard `shared`."""
    nvml(nvml_scenarios.no_driver())
    tui_desk.launch(tui_desk.make_spec("ssh", name="shared", cpus=1))
    tui_desk.add_collaborator("bob")
    tui_desk.grant("bob", "shared")
    [grant] = tui_desk.store.grants(collaborator="bob")
    tui_desk.store.put_grant("bob", "shared", grant.installed, pending=True)  # as a rotation cut short leaves it
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("k")
        await settle(pilot, lambda: isinstance(app.screen, Collaborators), message="the list")
        await settle(pilot, lambda: "shared*" in screen_text(app), message="the pending mark")
        assert "* a key rotation is pending there: r finishes it" in screen_text(app)
