"""The dashboard route: what ptdesk watch says to this person shows in the open dashboard, once,
and the terminal is raised as the person chose (a BEL by default, OSC 9 when asked)."""

from __future__ import annotations

from pathlib import Path

from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import announce, oom_notice
from ptdesk.core.notify.terminal import set_terminal_style
from ptdesk.tui.app import PtdeskApp
from tests.support.tuihelpers import nvml_scenarios, settle


def _shown(app) -> list[str]:
    return [n.title for n in app._notifications]


async def test_a_notice_from_the_watcher_shows_in_the_dashboard_and_raises_the_terminal(tui_desk, nvml, engine):
    nvml(nvml_scenarios.healthy(gpus=1))
    home = Path(tui_desk.config.home)
    announce(tui_desk, "before-the-dashboard", Notice("expiry", "said before", "old news"))
    set_terminal_style(home, "osc9")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: app.main.listed, message="the list")
        watcher = tui_desk.fork()  # ptdesk watch, in effect: another process's Workstation
        said = announce(watcher, "oom:test:1", oom_notice("train", 1, "16g"))
        assert said is not None
        assert announce(watcher, "oom:test:1", oom_notice("train", 1, "16g")) is None  # said once
        await settle(pilot, lambda: "ptdesk: 'train' ran out of memory" in _shown(app), message="the notice")
        feed = app.main.notice_feed
        feed.poll()  # a later poll shows nothing again
        assert _shown(app).count("ptdesk: 'train' ran out of memory") == 1
        assert "said before" not in _shown(app)  # what was said before it opened is not replayed
        assert feed.alerts == ["\x1b]9;ptdesk: 'train' ran out of memory: " + _clean_body() + "\a"]
        watcher.close()


def _clean_body() -> str:
    return oom_notice("train", 1, "16g").body.replace(";", ",")[:200]
