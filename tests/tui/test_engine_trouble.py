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
