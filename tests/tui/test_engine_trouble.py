"""The engine goes away while the dashboard runs, and comes back: banner, live GPUs, recovery."""

from __future__ import annotations

from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.widgets.gpu_panel import GpuRow
from tests.support.engine_proxy import EngineProxy
from tests.support.tuihelpers import nvml_scenarios, settle


async def test_engine_unreachable_then_back(tui_desk, sleeper, nvml, monkeypatch, tmp_path):
    proxy = EngineProxy(tmp_path / "docker.sock")
    monkeypatch.setenv("DOCKER_HOST", proxy.url)
    nvml(nvml_scenarios.healthy(pids=(999_999_3,), gpus=1))
    sleeper("fred-one", owner="fred")
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(160, 48)) as pilot:
        banner = app.query_one("#banner")
        # Unreachable at start: a banner, and the GPU panel works anyway.
        await settle(pilot, lambda: app.main.engine_up is False and banner.display, message="the banner")
        assert "Docker engine unreachable" in str(banner.render())
        assert proxy.url in str(banner.render())  # the DOCKER_HOST it tried, named
        await settle(pilot, lambda: app.query(GpuRow), message="GPU rows without an engine")

        # The engine appears: the banner goes and the list fills by itself.
        proxy.start()
        await settle(pilot, lambda: app.main.engine_up and not banner.display, timeout=30, message="recovery")
        await settle(pilot, lambda: [e.name for e in app.main.experiments] == ["fred-one"])

        # It goes away while running: banner again, GPU samples keep coming, nothing crashes.
        proxy.stop()
        await settle(pilot, lambda: app.main.engine_up is False and banner.display, timeout=30, message="engine gone")
        samples = app.main.gpu_samples
        await settle(pilot, lambda: app.main.gpu_samples >= samples + 2, message="GPU panel staying live")
        assert [e.name for e in app.main.experiments] == ["fred-one"]  # the last known state stays shown

        proxy.start()
        await settle(pilot, lambda: app.main.engine_up and not banner.display, timeout=30, message="second recovery")
        assert app.is_running
    proxy.stop()


async def test_a_dashboard_opened_while_the_engine_is_down_shows_what_this_home_knows(tui_desk, nvml, monkeypatch,
                                                                                       tmp_path):
    """Not an empty table that reads as "everything is gone": the experiments this home recorded are
    listed as unreachable (as `ptdesk ls` lists them), from its own store, no engine asked."""
    from ptdesk.core.store.state import ExperimentRecord

    with tui_desk.store.tx() as conn:
        tui_desk.store.insert_experiment(conn, ExperimentRecord("kept-nb", "jupyter", "ann", "img", "running", 1.0,
                                                                container_id="c0ffee", gpus=(0,)))
    monkeypatch.setenv("DOCKER_HOST", EngineProxy(tmp_path / "docker.sock").url)  # nothing answers there
    nvml(nvml_scenarios.no_driver())
    app = PtdeskApp(tui_desk)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, lambda: app.main.engine_up is False, message="the engine seen down")
        await settle(pilot, lambda: [e.name for e in app.main.experiments] == ["kept-nb"], message="the kept row")
        assert "kept-nb" in str(app.main.table.get_row_at(0)[0])

