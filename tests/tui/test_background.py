"""Background tasks that fail: the dashboard says so once, keeps the rest live, and recovers by itself."""

from __future__ import annotations

from pathlib import Path

import ptdesk.tui.live as live_module
from ptdesk.config import load_config
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.widgets.gpu_panel import GpuPanel, GpuRow
from tests.support.tuihelpers import nvml_scenarios, settle

SIZE = (160, 48)


def _record_errors(app: PtdeskApp) -> list[str]:
    """Every error notification the app raises (notifications expire; this list does not)."""
    errors: list[str] = []
    notify = app.notify

    def recording(message: str, *args, **kwargs) -> None:
        if kwargs.get("severity") == "error":
            errors.append(message)
        notify(message, *args, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return errors


async def test_corrupt_state_db_one_notice_live_gpus_then_recovery(ptdesk_env, sleeper, nvml, monkeypatch):
    """A state.db that is not a database: the GPU panel stays live (owners come from /proc and the
    engine), one error notification however often the tasks retry, and once the file is fixed the
    event watcher comes back by itself and the list fills."""
    home = Path(ptdesk_env["PTDESK_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "state.db").write_bytes(b"\x00garbage, not SQLite\xff" * 64)
    sleeper("gina-box", owner="gina")
    nvml(nvml_scenarios.healthy(gpus=2))  # GPU 0 runs this test's own process: owners are looked up
    monkeypatch.setattr(live_module, "GPU_INTERVAL", 0.05)
    monkeypatch.setattr(live_module, "EVENTS_RETRY_FIRST", 0.05)
    monkeypatch.setattr(live_module, "EVENTS_RETRY_MAX", 0.2)
    ws = Workstation(load_config(ptdesk_env))
    app = PtdeskApp(ws)
    errors = _record_errors(app)
    try:
        async with app.run_test(size=SIZE) as pilot:
            panel = app.query_one(GpuPanel)
            # Rows and their cells: a row is mounted before its cells are.
            await settle(pilot, lambda: len(panel.query(GpuRow)) == 2 and len(panel.query(".gpu-users")) == 2,
                         message="two GPU rows")
            # Many GPU samples and several event-watcher retries with the store still broken.
            await settle(pilot, lambda: app.main.gpu_samples >= 30, message="GPU samples going on")
            assert "host pid" in str(panel.query(GpuRow).first().query_one(".gpu-users").render())
            assert len(errors) <= 1, errors
            assert all("state database" in e for e in errors), errors

            for path in home.glob("state.db*"):  # the person fixes it (here: starts afresh)
                path.unlink()
            await settle(pilot, lambda: app.main.engine_up and not app.query_one("#banner").display, timeout=30,
                         message="the event watcher back")
            await settle(pilot, lambda: [e.name for e in app.main.experiments] == ["gina-box"], message="the list")
            assert len(errors) <= 1, errors
            assert app.is_running
    finally:
        ws.close()


async def test_dead_event_watcher_banner_retry_with_backoff(tui_desk, nvml, monkeypatch):
    """The events worker dying (whatever the cause) is a banner and one notification, and it is
    started again, later each time while it keeps dying."""
    nvml(nvml_scenarios.no_driver())
    monkeypatch.setattr(live_module, "EVENTS_RETRY_FIRST", 0.1)
    # watch_events=False: the "watcher" reports the engine up and returns, so the test decides
    # when the events worker dies.
    app = PtdeskApp(tui_desk, watch_events=False)
    errors = _record_errors(app)

    def die() -> None:
        raise PtdeskError("The event stream broke.", "Nothing to do; ptdesk retries.")

    # The banner is up for about 0.1 s each time: what it showed is recorded, not polled for.
    banners: list[str | None] = []
    show_banner = app.main._banner

    def recording(text: str | None) -> None:
        banners.append(text)
        show_banner(text)

    app.main._banner = recording  # type: ignore[method-assign]

    def shown_since(start: int, hidden: bool = False) -> str | bool | None:
        """The first banner shown after banners[start] (or, with `hidden`, whether it went again)."""
        texts = [i for i, text in enumerate(banners) if i >= start and text]
        if not texts:
            return None
        return banners[texts[0]] if not hidden else None in banners[texts[0]:]

    async with app.run_test(size=SIZE) as pilot:
        banner = app.query_one("#banner")
        await settle(pilot, lambda: app.main.engine_up and app.main.listed, message="the engine up")
        start = len(banners)
        app.main.run_worker(die, thread=True, group="events@local", exit_on_error=False)
        text = await settle(pilot, lambda: shown_since(start), message="the banner")
        assert "Not following the Docker engine's events: The event stream broke." in text
        # Started again: it reports the engine up, and the banner goes.
        await settle(pilot, lambda: shown_since(start, hidden=True) and not banner.display, timeout=10,
                     message="the restarted watcher")
        assert app.main.feeds["local"].events_retry == 0.2  # the next death waits twice as long

        start = len(banners)
        app.main.run_worker(die, thread=True, group="events@local", exit_on_error=False)
        await settle(pilot, lambda: shown_since(start), message="the banner again")
        await settle(pilot, lambda: shown_since(start, hidden=True) and not banner.display, timeout=10,
                     message="restarted again")
        assert app.main.feeds["local"].events_retry == 0.4
        assert errors == ["The event stream broke.\nNothing to do; ptdesk retries."]  # said once
