"""What a person meets in the first hour at the dashboard (issue "The first hour"): the log filter,
the form after an error, the table's order and words, the collaborators screen, the image prompt.
On the real engine, driven through Pilot."""

from __future__ import annotations

import subprocess
from pathlib import Path

from textual.widgets import Input, Log
from textual.widgets._data_table import ColumnKey

from ptdesk.config import load_config
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens.collaborators import Collaborators
from ptdesk.tui.screens.confirm import Confirm
from ptdesk.tui.screens.help import Help
from ptdesk.tui.screens.new_experiment import NewExperiment
from ptdesk.tui.screens.prompt import Prompt, Report
from ptdesk.tui.widgets.log_pane import LogPane
from tests.support.tuihelpers import nvml_scenarios, screen_text, settle

SIZE = (160, 45)
CHATTY = "i=0; while :; do i=$((i+1)); echo {word}-$i; [ $((i % 4)) = 0 ] && echo {word}-ERROR-$i; sleep 0.02; done"


def shown_names(app: PtdeskApp) -> list[str]:
    table = app.main.table
    return [table.experiments[row.key.value].name for row in table.ordered_rows]


async def open_form(pilot, app: PtdeskApp) -> NewExperiment:
    await pilot.press("n")
    form = await settle(pilot, lambda: isinstance(app.screen, NewExperiment) and app.screen)
    await settle(pilot, lambda: form.query_one("#name", Input).value, message="a suggested name")
    return form


async def test_log_filter_returns_focus_belongs_to_its_experiment_and_following_follows(tui_desk, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    sleeper("a-chat", script=CHATTY.format(word="alpha"))
    sleeper("b-chat", script=CHATTY.format(word="beta"))
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(LogPane)
        log = pane.query_one(Log)
        await settle(pilot, lambda: len(app.main.experiments) == 2 and pane.lines, message="lines")
        # l, f, type, Enter, Escape: back on the dashboard, and n opens the form.
        await pilot.press("l", "f", *"ERROR", "enter")
        assert pane.filter_text == "ERROR"
        assert not isinstance(app.focused, Input)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.maximized is None and app.focused is app.main.table
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewExperiment))
        assert pane.filter_text == "ERROR"  # nothing was typed into the filter
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is app.main)

        # The filter was typed for this experiment's log: the next one starts unfiltered.
        await pilot.press("down")
        await settle(pilot, lambda: pane.filter_text == "" and pane.name_shown != "" and
                     pane.container == app.main.table.selected.id, message="the other log, unfiltered")
        assert not pane.query_one("#log-filter").display

        # Filter, then clear it: the view is at the bottom, and new lines keep arriving in view.
        await pilot.press("f", *"ERROR", "enter")
        await settle(pilot, lambda: len(log.lines) > log.size.height, message="more filtered lines than fit")
        await pilot.press("escape")  # clears the applied filter
        assert pane.filter_text == ""
        await settle(pilot, lambda: len(log.lines) > log.size.height + 20, message="many lines")
        newest = pane.lines[-1]
        await settle(pilot, lambda: pane.lines[-1] != newest, message="new lines")
        await pilot.pause()
        assert log.is_vertical_scroll_end, (log.scroll_y, log.max_scroll_y)
        assert log.lines[-1] == pane.lines[-1] or log.lines[-1] in list(pane.lines)[-5:]


async def test_form_errors_focus_the_field_in_form_words(ptdesk_env, monkeypatch, nvml):
    nvml(nvml_scenarios.no_driver())
    home = Path(ptdesk_env["PTDESK_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('gpus = "none"\n')  # the form's default is the config's, as the CLI's
    monkeypatch.setenv("SUDO_USER", "alice")
    ws = Workstation(load_config(ptdesk_env))
    app = PtdeskApp(ws)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.main.listed)
            form = await open_form(pilot, app)
            assert form.query_one("#gpus", Input).value == "none"
            for field, value, words, wrong in (("cpus", "0", "CPUs must be at least 0.01", "pids"),
                                               ("gpus", "0,0", "GPUs", "--gpus"),
                                               ("memory", "lots", "memory", "--memory"),
                                               ("name", "Bad!", "experiment name", "--name")):
                form.query_one(f"#{field}", Input).value = value
                form.query_one("#name", Input).focus()
                await pilot.press("enter")
                await settle(pilot, lambda w=words: not form.busy and w in str(form.query_one("#steps").render()),
                             message=f"the error about {field}")
                steps = str(form.query_one("#steps").render())
                assert words in steps and wrong not in steps and "--" not in steps, steps
                target = form.query_one(f"#{field}", Input)
                assert app.focused is target, (field, app.focused)
                assert target.selection.is_empty and target.value == value  # nothing selected, nothing lost
                target.value = {"cpus": "1", "gpus": "none", "memory": "1g", "name": "fine-name"}[field]
            assert ws.store.experiments() == []
    finally:
        ws.close()


async def test_table_order_words_and_widths(tui_desk, engine, sleeper, nvml):
    nvml(nvml_scenarios.no_driver())
    sleeper("aa-one")
    long_id = sleeper("ab-a-rather-long-experiment-name")
    stopped = sleeper("ac-three")
    engine.stop(stopped)
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: len(app.main.table.ordered_rows) == 3, message="three rows")
        before = shown_names(app)
        await settle(pilot, lambda: "ac-three" in screen_text(app), message="the rows drawn")
        assert "stopped" in screen_text(app) and "exited" not in screen_text(app)
        app.main.table.move_cursor(row=app.main.table.get_row_index(stopped))
        await pilot.press("c")
        await settle(pilot, lambda: any("stopped" in n.message for n in app._notifications), message="why not")
        # Clearing the filter brings the rows back in the order they had.
        await pilot.press("slash", *"aa")
        await settle(pilot, lambda: shown_names(app) == ["aa-one"])
        await pilot.press("escape")
        await settle(pilot, lambda: len(shown_names(app)) == 3)
        assert shown_names(app) == before
        # The Name column fits the rows that are left.
        width = app.main.table.columns[ColumnKey("name")].content_width
        engine.remove(long_id, force=True)
        await settle(pilot, lambda: len(shown_names(app)) == 2, timeout=30, message="the row to go")
        assert app.main.table.columns[ColumnKey("name")].content_width < width


def _pubkey(tmp_path: Path) -> Path:
    key = tmp_path / "carol_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "carol", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


async def test_collaborators_keys_add_errors_stay_export_and_remove(tui_desk, nvml, tmp_path):
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed)
        await pilot.press("k")
        screen = await settle(pilot, lambda: isinstance(app.screen, Collaborators) and app.screen)
        await pilot.press("question_mark")
        help_screen = await settle(pilot, lambda: isinstance(app.screen, Help) and app.screen)
        await settle(pilot, lambda: "Keys on the collaborators screen" in screen_text(app), message="the help drawn")
        keys = screen_text(app)
        assert help_screen.scope == "collab" and "export" in keys.lower() and "rotate" in keys.lower()
        assert "Start a new experiment" not in keys  # not the main screen's keys
        await pilot.press("escape")

        # Add with their own public key and an expiry; a bad expiry first: the dialog stays, input kept.
        await pilot.press("a")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
        prompt.query_one("#name", Input).value = "carol"
        prompt.query_one("#pubkey", Input).value = str(_pubkey(tmp_path))
        prompt.query_one("#expires", Input).value = "whenever"
        await pilot.press("enter")
        await settle(pilot, lambda: not prompt.busy and "whenever" in str(prompt.query_one("#prompt-error").render()),
                     message="the error in the dialog")
        assert app.screen is prompt and prompt.query_one("#name", Input).value == "carol"
        prompt.query_one("#expires", Input).value = "30d"
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, Report), message="the report")
        await pilot.press("escape")
        await settle(pilot, lambda: "carol" in screen.items, message="carol listed")
        carol = screen.items["carol"]
        assert carol.expires and carol.identity_file is None  # their own key, with an expiry

        # Export with no grants: the error stays in the dialog.
        await pilot.press("e")
        prompt = await settle(pilot, lambda: isinstance(app.screen, Prompt) and app.screen)
        prompt.query_one("#folder", Input).value = str(tmp_path / "out")
        await pilot.press("enter")
        await settle(pilot, lambda: "no access" in str(prompt.query_one("#prompt-error").render()),
                     message="nothing to export")
        assert app.screen is prompt
        await pilot.press("escape")

        # Remove asks first.
        await settle(pilot, lambda: app.screen is screen)
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await settle(pilot, lambda: isinstance(app.screen, Report), message="removed")
        await pilot.press("escape")
        await settle(pilot, lambda: "carol" not in screen.items, message="carol gone")
        assert [c.name for c in tui_desk.collaborators()] == []


async def test_missing_image_is_built_only_on_b(ptdesk_env, monkeypatch, nvml):
    nvml(nvml_scenarios.no_driver())
    monkeypatch.setenv("SUDO_USER", "alice")
    ws = Workstation(load_config({**ptdesk_env, "PTDESK_JUPYTER_IMAGE": "ptdesk-test/not-built:latest"}))
    app = PtdeskApp(ws)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.main.listed)
            form = await open_form(pilot, app)
            await pilot.press("enter")
            await settle(pilot, lambda: form.missing_image and form.query_one("#build-offer").display,
                         message="the build offer")
            assert "press b" in str(form.query_one("#build-text").render())
            assert app.focused is None and not form.query_one("#build").can_focus
            await pilot.press("enter", "space")
            await pilot.pause()
            assert not form.busy and not form.query_one("#build-log").display  # Enter built nothing
    finally:
        ws.close()


async def test_driver_sentence_once_in_a_notice_and_in_details(tui_desk, nvml):
    from ptdesk.core.base.models import EnvironmentMark, Experiment
    from ptdesk.tui.messages import ExperimentsListed
    from ptdesk.tui.screens.details import Details

    nvml(nvml_scenarios.no_driver())
    sentence = "The host's NVIDIA driver 470.57 is older than CUDA 12.4 in this image needs (550 or newer)."
    e = Experiment(name="old-driver", id="", kind="ssh", owner="alice", image="ptdesk/ssh:latest",
                   status="running", environment=EnvironmentMark("3f2a9c0d1b7e", "sha256:x", cuda="12.4",
                                                                 driver_warning=sentence))
    app = PtdeskApp(tui_desk, watch_events=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.main.listed and app.main.engine_up)
        app.main.feeds["local"].stop()  # from here on only these lists arrive
        await settle(pilot, lambda: not [w for w in app.main.workers if w.group == "list@local" and not w.is_finished],
                     message="the list feed to end")
        for _ in range(2):  # listed twice: noticed once
            app.main.post_message(ExperimentsListed((e,)))
            await settle(pilot, lambda: "old-driver" in [x.name for x in app.main.experiments])
        await pilot.pause()
        assert [n.message for n in app._notifications].count(sentence) == 1
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, Details))
        await settle(pilot, lambda: sentence in " ".join(screen_text(app).split()), message="the sentence drawn")


async def test_environment_marks_are_refreshed_off_the_ui_thread(tui_desk, sleeper, nvml, monkeypatch):
    import threading

    import ptdesk.tui.live as live

    nvml(nvml_scenarios.no_driver())
    sleeper("env-check")
    monkeypatch.setattr(live, "ENV_FIRST", 0.1)
    threads: list[str] = []
    real = tui_desk.check_environments

    def check() -> list:
        threads.append(threading.current_thread().name)
        return real()

    tui_desk.check_environments = check  # the real check, counted
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: threads, message="an environment check")
        assert threading.main_thread().name not in threads
