"""Who really used the GPUs, recorded from real sampled state: experiments really holding GPUs on the
GPU test engine, an NVML scenario saying how busy each GPU is, a reservation on the engine. Two
recorders (two `ptdesk watch` of one box) record it into the box's one history without counting it
twice; `ptdesk report` gives the figures; the weekly report is sent by one watcher, not both."""

from __future__ import annotations

import time

import pytest

from ptdesk.core.base import clock
from ptdesk.core.usage.history import LABEL_USAGE
from ptdesk.core.usage.recorder import UsageRecorder
from ptdesk.core.usage.weekly import send_if_due
from ptdesk.core.workstation import Workstation
from tests.support.gpu_engine import GpuDesk

GiB = 1024**3
EVERY = 90.0


def test_two_watchers_record_real_holds_once_and_the_report_gives_them(
        gpu_desk: GpuDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_desk.new("--name", "train", "--gpus", "0")
    gpu_desk.new("--name", "nb", "--gpus", "1")
    gpu_desk.ok("reserve", "2", "--to", "2h")  # reserved by this person, held by nobody
    box = gpu_desk.scenario
    box.gpus[0].util, box.gpus[0].used = 50, 20 * GiB  # train works at 50 %; nb holds GPU 1 and does nothing
    moment = [time.time() + 1]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    ws = gpu_desk.workstation()
    other = Workstation(ws.config)  # a second watcher of the same box, with its own connections
    try:
        first, second = UsageRecorder(), UsageRecorder()
        for _ in range(2):  # both sample the same state twice, EVERY seconds apart
            first.sample(ws, every=EVERY)
            second.sample(other, every=EVERY)
            moment[0] += EVERY
        assert first.flush(ws) >= 1 and second.flush(other) >= 1
        assert len(gpu_desk.engine.api.containers(all=True, filters={"label": [
            f"{LABEL_USAGE}=1", f"ptdesk.instance={gpu_desk.instance}"]})) == 1  # one history per box

        document = gpu_desk.json("report", "--since", "1d")
        me = document["people"][0]
        assert len(document["people"]) == 1
        # 2 GPUs held for 2 x 90 s = 0.1 GPU-hours; train 50 % busy over 180 s; nb idle 180 s; GPU 2 unused 180 s.
        assert (me["held_gpu_hours"], me["busy_gpu_hours"], me["idle_held_gpu_hours"],
                me["reserved_unused_gpu_hours"], me["peak_memory_gib"]) == (0.1, 0.025, 0.05, 0.05, 20.0)
        assert [(w["workstation"], w["held_gpu_hours"]) for w in document["workstations"]] == [("local", 0.1)]
        assert sum(i["held_gpu_hours"] for i in document["images"]) == 0.1
        text = gpu_desk.ok("report", "--since", "1d", "--on", "all")
        assert "PERSON" in text and " 0.10 " in text and " 20.00" in text

        # The weekly report, a week later: the first watcher of the box says it, the second is silent.
        assert send_if_due(ws, moment[0]) is None  # the week before this one recorded nothing: not sent
        later = moment[0] + 7 * 86400
        said = send_if_due(ws, later)
        assert said is not None and "0.10" in said.notice.body and said.notice.event == "report"
        assert send_if_due(other, later) is None
        journal = (gpu_desk.home / "notify" / "journal.jsonl").read_text()
        assert journal.count('"event": "report"') == 1
    finally:
        other.close()
        ws.close()
