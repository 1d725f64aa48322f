"""Who really used the GPUs: the report from a recorded history gives exactly the figures recorded
(held, busy, held while idle, reserved but unused, peak memory), however the days are read; two
recorders of one box never count a GPU's minutes twice; ranges people type, and those that do not parse."""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from ptdesk.core.base.gpu_models import GpuSample, GpuSnapshot
from ptdesk.core.gpu.ledger import Hold
from ptdesk.core.sharing.claims import GpuClaim
from ptdesk.core.usage.buckets import RECORD, SLOTS_PER_DAY, decode, encode
from ptdesk.core.usage.ranges import period, report_range
from ptdesk.core.usage.recorder import UsageRecorder
from ptdesk.core.usage.report import figures_of, to_json
from ptdesk.errors import InvalidInput
from tests.support.helpers import run_cli

GiB = 1024**3
DAY0 = 20_000 * 86400.0  # a UTC midnight (2024-10-04)
STEP = 30.0


def snapshot(util: dict[int, int], memory: dict[int, int] | None = None, gpus: int = 4) -> GpuSnapshot:
    return GpuSnapshot(True, None, "580", tuple(
        GpuSample(i, f"GPU-{i}", "H100", utilization=util.get(i, 0), memory_used=(memory or {}).get(i, 0),
                  memory_total=80 * GiB) for i in range(gpus)))


def held(index: int, experiment: str, owner: str, busy: bool, state: str = "running") -> GpuClaim:
    return GpuClaim(index, Hold(experiment, owner, state), busy)  # type: ignore[arg-type]


def record_known_day(recorder: UsageRecorder, only: range | None = None) -> None:
    """Samples every 30 s of one day (or of the sample numbers in `only`), with known figures:
    - 00:00-02:00 alice's `train` holds GPU 0, 50 % busy, 20 GiB; then 02:00-03:00 it holds it idle;
    - 00:00-03:00 bob has GPU 1 reserved; nobody holds it for two hours, then carol's `nb` holds it
      idle for one hour (still bob's reservation, unused by bob);
    - 04:00-05:00 alice's `train` stopped, still holding GPU 0 (its hold after stop): held, idle."""
    for n in only if only is not None else range(int(6 * 3600 / STEP)):
        t = DAY0 + (n + 1) * STEP  # the sample at t stands for the 30 s before it
        hours = (t - DAY0 - 1) / 3600
        claims, util, memory, reservers = {}, {}, {}, {}
        if hours < 2:
            claims[0], util[0], memory[0] = held(0, "train", "alice", True), 50, 20 * GiB
        elif hours < 3:
            claims[0], memory[0] = held(0, "train", "alice", False), 20 * GiB
        elif 4 <= hours < 5:
            claims[0] = held(0, "train", "alice", False, state="stopped")
        if hours < 3:
            reservers[1] = "bob"
            if hours >= 2:
                claims[1] = held(1, "nb", "carol", False)
        recorder.observe(t, snapshot(util, memory), claims, reservers, {"train": "pt:2.4", "nb": "jupyter"}, STEP)


def report(recorders: list[UsageRecorder], start: float, end: float) -> dict:
    days = [decode(encode(r.days[d])) for r in recorders for d in r.days]
    return to_json(figures_of("box", days, start, end), start, end, {})


def people(document: dict) -> dict[str, tuple]:
    return {p["person"]: (p["held_gpu_hours"], p["busy_gpu_hours"], p["idle_held_gpu_hours"],
                          p["reserved_unused_gpu_hours"], p["peak_memory_gib"]) for p in document["people"]}


EXPECTED = {"alice": (4.0, 1.0, 2.0, 0.0, 20.0), "carol": (1.0, 0.0, 1.0, 0.0, 0.0), "bob": (0.0, 0.0, 0.0, 3.0, 0.0)}


def test_the_report_of_a_recorded_history_gives_exactly_the_known_figures() -> None:
    recorder = UsageRecorder()
    record_known_day(recorder)
    whole_day = report([recorder], DAY0, DAY0 + 86400)  # read from the day's totals
    assert people(whole_day) == EXPECTED
    cut = report([recorder], DAY0, DAY0 + 4.5 * 3600)  # the range cuts the day: read bucket by bucket
    assert people(cut) == {**EXPECTED, "alice": (3.5, 1.0, 1.5, 0.0, 20.0)}
    assert {i["image"]: i["held_gpu_hours"] for i in whole_day["images"]} == {"pt:2.4": 4.0, "jupyter": 1.0}
    box = whole_day["workstations"][0]
    assert (box["workstation"], box["held_gpu_hours"], box["reserved_unused_gpu_hours"]) == ("box", 5.0, 3.0)
    assert report([recorder], DAY0 + 86400, DAY0 + 2 * 86400)["people"] == []  # nothing recorded that day


def test_two_recorders_on_one_box_never_count_a_gpus_minutes_twice() -> None:
    first, second = UsageRecorder(), UsageRecorder()
    record_known_day(first)
    record_known_day(second)  # a second `ptdesk watch` of the same box saw the same
    assert people(report([first, second], DAY0, DAY0 + 86400)) == EXPECTED
    # One watcher restarted at 01:00 (a new recorder from then on): its two files add up to the day.
    before, after = UsageRecorder(), UsageRecorder()
    record_known_day(before, range(0, 120))
    record_known_day(after, range(120, 720))
    assert people(report([before, after, first], DAY0, DAY0 + 86400)) == EXPECTED
    assert people(report([before, after], DAY0, DAY0 + 86400)) == EXPECTED


def test_a_busy_box_day_is_bounded_and_an_unused_gpu_writes_nothing() -> None:
    recorder = UsageRecorder()
    for n in range(int(86400 / STEP)):  # 8 GPUs held all day by experiments that change every hour
        t = DAY0 + (n + 1) * STEP
        claims = {i: held(i, f"run{int((t - DAY0 - 1) // 3600)}-{i}", f"p{i}", True) for i in range(8)}
        recorder.observe(t, snapshot({i: 37 + n % 50 for i in range(8)}, {i: n * 1000 for i in range(8)}, 8),
                         claims, {}, {}, STEP)
    data = encode(recorder.days[20_000])
    assert len(data) < 8 * SLOTS_PER_DAY * RECORD.size  # compressed below the raw bound (43 KiB)
    idle = UsageRecorder()
    idle.observe(DAY0 + 30, snapshot({}), {}, {}, {}, STEP)
    assert len(decode(encode(idle.days[20_000])).records) == 0


NOW = datetime(2026, 12, 9, 15, 30).astimezone().timestamp()  # a Wednesday


def local(*args: int) -> float:
    return datetime(*args).astimezone().timestamp()


def test_ranges_people_type() -> None:
    assert report_range("7d", None, NOW) == (NOW - 7 * 86400, NOW)
    assert report_range(None, None, NOW) == (NOW - 7 * 86400, NOW)
    assert report_range("2026-12-01", "2026-12-03", NOW) == (local(2026, 12, 1), local(2026, 12, 4))
    assert report_range("last week", "last week", NOW) == (local(2026, 11, 30), local(2026, 12, 7))
    assert report_range("monday", None, NOW) == (local(2026, 12, 7), NOW)
    assert report_range("Mon", "yesterday", NOW) == (local(2026, 12, 7), local(2026, 12, 9))
    assert period("this month", NOW) == (local(2026, 12, 1), local(2027, 1, 1))
    assert period("2026-12-01T09:00", NOW)[0] == local(2026, 12, 1, 9)


@pytest.mark.parametrize("since, until, says", [
    ("next tuesday", None, "'next tuesday' is not a time ptdesk understands."),
    ("2026-13-01", None, "'2026-13-01' is not a time ptdesk understands."),
    ("-3d", None, "'-3d' is not a time ptdesk understands."),
    ("", None, "The range is empty: it names no time."),
    ("2026-12-05", "2026-12-01", "The range starts (2026-12-05) at or after it ends (2026-12-01)."),
])
def test_a_range_that_does_not_parse_is_one_sentence_and_exit_2(tmp_path, since, until, says) -> None:
    with pytest.raises(InvalidInput):
        report_range(since, until, NOW)
    env = {**os.environ, "PTDESK_HOME": str(tmp_path / "home"), "DOCKER_HOST": "unix:///nonexistent.sock"}
    code, out, err = run_cli(["report", "--since", since, *(["--until", until] if until else [])], env)
    assert code == 2 and out == "" and err.splitlines()[0] == f"ptdesk: {says}" and len(err.splitlines()) == 2
    if "understands" in says:  # the hint names every form, the ISO time the README promises too
        assert "an ISO time (2026-12-01T09:00)" in err.splitlines()[1]
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.ptu"))


def test_jobs_run_and_failed_come_from_the_job_records_of_that_workstation(tmp_path, monkeypatch) -> None:
    """The report's JOBS/FAILED columns count the batch-job records this home keeps (they outlive the
    containers): jobs that started in the range on that workstation; a cancelled-while-queued one
    never ran, a cancelled one is not a failure, a timed-out one is."""
    from types import SimpleNamespace

    from ptdesk.config import load_config
    from ptdesk.core.jobs import record as records
    from ptdesk.core.usage.jobs import count_job_records

    monkeypatch.setenv("PTDESK_HOME", str(tmp_path))
    config = load_config()
    ended = {"a": ("alice", "succeeded", DAY0 + 60), "b": ("alice", "failed", DAY0 + 120),
             "c": ("alice", "timed out", DAY0 + 180), "d": ("bob", "cancelled", DAY0 + 240),
             "e": ("bob", "cancelled", None), "f": ("bob", "failed", DAY0 - 60)}
    for name, (owner, status, started) in ended.items():
        records.make_folder(config, name)
        records.save(config, records.JobRecord(name, owner, ("true",), DAY0 - 600, status=status, started=started))
    records.make_folder(config, "g")
    records.save(config, records.JobRecord("g", "alice", ("true",), DAY0, workstation="box", status="failed",
                                           started=DAY0 + 60))
    site = SimpleNamespace(name="local", config=config)
    assert count_job_records(site, DAY0, DAY0 + 86400) == {"alice": (3, 2), "bob": (1, 0)}  # type: ignore[arg-type]
