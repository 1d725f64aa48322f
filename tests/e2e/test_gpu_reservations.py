"""GPU reservations end to end on the GPU-capable test engine: booking rules, what launches and
the queue do around them, and what happens to others' experiments when one starts (the test
passes the moment in: nobody sleeps until a reservation starts)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from e2e.test_gpu_queue import core, person, two_gpus  # noqa: F401 - the fixture is used by name

from ptdesk.core.base import clock
from ptdesk.core.gpu_desk import GpuDesk as Desk
from ptdesk.core.sharing.reservations import PAST_KEPT, clock_text, zone
from tests.support.gpu_engine import GpuDesk
from tests.support.helpers import wait_until


def at(hours: float) -> str:
    """An ISO time `hours` from now, as a person types it (the workstation's time zone)."""
    return (datetime.now() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def test_booking_rules_overlaps_past_and_cancelling(two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    mine = ann.json("reserve", "0", "--from", "tomorrow 9:00", "--to", "tomorrow 12:00")
    assert (mine["gpus"], mine["owner"], mine["state"]) == ([0], "ann", "future")
    line = bob.fails("reserve", "0,1", "--from", "tomorrow 10:00", "--to", "tomorrow 11:00", rc=1)[0]
    assert line.startswith("ptdesk: GPU 0 is reserved by ann ") and "09:00–" in line
    bob.ok("reserve", "1", "--from", "tomorrow 10:00", "--to", "2h")  # another GPU: fine
    timeline = bob.json("reservations")["reservations"]
    assert sorted((r["owner"], tuple(r["gpus"])) for r in timeline) == [("ann", (0,)), ("bob", (1,))]
    text = bob.ok("reservations")
    assert "GPU 0: " in text and "ann" in text and "GPU 1: " in text
    # Someone else's is theirs; one's own future one can be cancelled, not ended.
    assert bob.fails("reservations", "cancel", mine["id"], rc=1)[0] == (
        f"ptdesk: Reservation {mine['id']} is ann's: only they can change it.")
    assert "has not started" in ann.fails("reservations", "end", mine["id"], rc=1)[0]
    ann.ok("reservations", "cancel", mine["id"])
    assert [r["owner"] for r in bob.json("reservations")["reservations"]] == ["bob"]


def test_bad_reservations_are_one_sentence_and_make_nothing(two_gpus: GpuDesk) -> None:  # noqa: F811
    desk = two_gpus
    cases = {
        ("reserve", "0", "--from", "2020-01-01T10:00", "--to", "2020-01-01T12:00"): (2, "is in the past"),
        ("reserve", "0", "--from", "tomorrow 12:00", "--to", "tomorrow 9:00"): (2, "is not after the start"),
        ("reserve", "7", "--to", "1h"): (1, "There is no GPU 7"),
        ("reserve", "0", "--from", "tomorow 9:00", "--to", "1h"): (2, "is not a start time ptdesk understands"),
        ("reserve", "0", "--to", "half past"): (2, "is not an end time ptdesk understands"),
        ("reserve", "none", "--to", "1h"): (2, "names no GPUs to reserve"),
        ("reservations", "cancel", "abc"): (1, "No reservation 'abc'"),
    }
    for args, (rc, words) in cases.items():
        line = desk.fails(*args, rc=rc)[0]
        assert words in line, (args, line)
    assert desk.json("reservations")["reservations"] == []


def test_a_started_reservation_can_be_ended_not_cancelled_and_holds_its_gpu(
        two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    now = ann.json("reserve", "0", "--to", "1h")
    assert now["state"] == "active"
    assert "it can be ended now, not cancelled" in ann.fails("reservations", "cancel", now["id"], rc=1)[0]
    # Honoured by launches: Bob cannot have GPU 0; auto gives him GPU 1; the queue waits, saying why.
    assert "reservation (ann " in bob.fails("new", "ssh", "--name", "b0", "--gpus", "0")[0]
    assert bob.new("--name", "b1", "--gpus", "auto")["gpus"] == [1]
    queued = bob.json("new", "ssh", "--name", "b2", "--gpus", "0", "--queue")
    assert "GPU 0 reserved by ann " in queued["queue"]["reason"]
    assert ann.new("--name", "a0", "--gpus", "0")["gpus"] == [0]  # her own reservation: hers to use
    ann.ok("reservations", "end", now["id"])
    assert bob.json("reservations")["reservations"] == []
    line = ann.fails("reservations", "end", now["id"], rc=1)[0]
    assert "No reservation" in line or "over" in line


def test_a_launch_before_a_reservation_is_told_when_to_give_the_gpu_back(
        two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    ann.json("reserve", "0", "--from", at(1), "--to", at(3))
    assert bob.new("--name", "b-auto", "--gpus", "auto")["gpus"] == [1]  # avoids the booked GPU
    code, out, err = bob.run("new", "ssh", "--cpus", "1", "--name", "b0", "--gpus", "0")
    assert code == 0, err
    assert "GPU 0 is reserved by ann from " in err and "give it back by then" in err


def test_when_a_reservation_starts_others_are_warned_then_stopped(two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    ann, bob, box = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "service"))
    booked = ann.json("reserve", "0", "--from", at(1), "--to", at(2))
    b0 = bob.new("--name", "b0", "--gpus", "0")
    b1 = bob.new("--name", "b1", "--gpus", "1")
    box.home.mkdir(parents=True, exist_ok=True)
    (box.home / "config.toml").write_text("reservation_grace = 300\n")
    desk, warned = Desk(core(box)), set()
    start = booked["start"]
    assert desk.enforce_reservations(warned, now=start - 1) == []  # not yet
    first = desk.enforce_reservations(warned, now=start + 1)
    assert [(h.experiment, h.action) for h in first] == [("b0", "warned")]
    assert desk.enforce_reservations(warned, now=start + 2) == []  # warned once
    assert bob.engine.is_running(b0["id"])
    stopped = desk.enforce_reservations(warned, now=start + 301)
    assert [(h.experiment, h.action) for h in stopped] == [("b0", "stopped")]
    assert not bob.engine.is_running(b0["id"]) and bob.engine.is_running(b1["id"])
    assert bob.engine.try_inspect(b0["id"]) is not None  # stopped, not removed: nothing made is lost


def test_use_outside_ptdesk_on_a_reserved_gpu_is_reported_never_touched(two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    from tests.support.nvml_scenarios import FakeProc, GiB

    ann, box = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "service")
    booked = ann.json("reserve", "0", "--from", at(1), "--to", at(2))
    gpu = ann.json("gpus")["gpus"][0]
    assert gpu["reserved"].startswith("ann ") and "–" in gpu["reserved"]  # who and when, in `ptdesk gpus`
    two_gpus.scenario.gpus[0].compute.append(FakeProc(pid=999_999_7, used=30 * GiB))
    two_gpus.install(two_gpus.scenario)
    desk, warned = Desk(core(box)), set()
    hits = desk.enforce_reservations(warned, now=booked["start"] + 1)
    assert [(h.action, h.gpus) for h in hits] == [("reported", (0,))]
    assert "pid 9999997" in hits[0].experiment
    assert desk.enforce_reservations(warned, now=booked["start"] + 2) == []  # once


def test_warn_only_never_stops(two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    ann, bob, box = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "service"))
    booked = ann.json("reserve", "0", "--from", at(1), "--to", at(2))
    b0 = bob.new("--name", "b0", "--gpus", "0")
    box.home.mkdir(parents=True, exist_ok=True)
    (box.home / "config.toml").write_text("reservation_grace = -1\n")
    desk, warned = Desk(core(box)), set()
    assert [h.action for h in desk.enforce_reservations(warned, now=booked["start"] + 1)] == ["warned"]
    assert desk.enforce_reservations(warned, now=booked["start"] + 86_000) == []
    assert bob.engine.is_running(b0["id"])


def test_ended_reservations_leave_the_engine_a_day_after_they_end(
        two_gpus: GpuDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    ann, bob = person(two_gpus, tmp_path, "ann"), person(two_gpus, tmp_path, "bob")
    ann.ok("reservations", "end", ann.json("reserve", "0", "--to", "1h")["id"])  # over now
    later = ann.json("reserve", "1", "--from", at(2), "--to", "1h")  # ends in about 3 h

    def records() -> set[str]:
        labels = ["ptdesk.reservation=1", f"ptdesk.instance={ann.instance}"]
        return {c["Id"][:12] for c in ann.engine.api.containers(all=True, filters={"label": labels})}

    assert len(records()) == 2
    bob.json("reservations")  # listing keeps what ended within the day
    assert len(records()) == 2
    monkeypatch.setattr(clock, "now", lambda: time.time() + PAST_KEPT + 60)
    bob.json("reservations")  # anyone's listing removes what ended over a day ago; the other stays
    assert records() == {later["id"]}


def test_the_owner_hears_in_ptdesk_that_a_reservation_displaces_their_experiment(
        two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    """Not only in the terminals inside the container: Bob's own ptdesk says it (his dashboard's
    journal and his route, a real webhook), once when warned, with when it stops, and once when stopped,
    though another person's watcher is the one that warns and stops."""
    from tests.support.helpers import run_cli
    from tests.support.receivers import webhook_server

    ann, bob, box = (person(two_gpus, tmp_path, u) for u in ("ann", "bob", "service"))
    for who in (bob, box):
        who.home.mkdir(parents=True, exist_ok=True)
        (who.home / "config.toml").write_text("reservation_grace = 300\n")
    b0 = bob.new("--name", "b0", "--gpus", "0")
    bob.new("--name", "b1", "--gpus", "1")
    booked = ann.json("reserve", "0", "--to", "2h")  # from now: b0 runs on it
    start = booked["start"]
    service, own = Desk(core(box)), Desk(core(bob))
    with webhook_server() as (url, posts):
        code, _, err = run_cli(["notify", "add", "hook", "--events", "reservation"], bob.env, input=url + "\n")
        assert code == 0, err
        bobs: set[tuple[str, str]] = set()  # what Bob's watcher remembers having warned
        own.enforce_reservations(bobs, now=start - 1)
        assert posts == []  # not started yet: nothing to say
        assert [h.action for h in service.enforce_reservations(set(), now=start + 1)] == ["warned"]
        told = own.enforce_reservations(bobs, now=start + 2)  # Bob's own watcher: says it to Bob...
        assert [(h.experiment, h.action) for h in told] == [("b0", "warned"), ("b0", "notified")]
        assert own.enforce_reservations(bobs, now=start + 3) == []  # ...once
        wait_until(lambda: len(posts) == 1, timeout=30, message="the warning on Bob's route")
        deadline = clock_text(start + 300) + " " + zone(start + 300)
        assert "'b0'" in posts[0]["message"] and "GPU 0" in posts[0]["message"]
        assert f"reserved by ann {clock_text(start)}" in posts[0]["message"]
        assert f"it will be stopped at {deadline}" in posts[0]["message"]
        assert [h.action for h in service.enforce_reservations(set(), now=start + 301)] == ["stopped"]
        assert not bob.engine.is_running(b0["id"])
        assert [h.action for h in own.enforce_reservations(bobs, now=start + 302)] == ["notified"]
        assert own.enforce_reservations(bobs, now=start + 303) == []
        wait_until(lambda: len(posts) == 2, timeout=30, message="the stop on Bob's route")
        assert posts[1]["title"] == "ptdesk: 'b0' was stopped for a reservation"
        assert "ptdesk start b0 --gpus any:1" in posts[1]["message"]
    # The dashboard shows what Bob's ptdesk said (its journal); b1 and Ann heard nothing.
    ws = core(bob)
    try:
        said = [e["title"] for e in ws.notices(0.0)]
    finally:
        ws.close()
    assert said == ["ptdesk: GPU 0 reserved by someone else has started: save 'b0'",
                    "ptdesk: 'b0' was stopped for a reservation"]
    assert not (ann.home / "notify" / "journal.jsonl").exists()
    assert len(posts) == 2


def test_two_people_reserving_the_same_slot_at_once_one_gets_it(two_gpus: GpuDesk, tmp_path: Path) -> None:  # noqa: F811
    """The overlap check and the booking are one step under the engine's GPU lock: of two people
    booking GPU 0 for the same hour at the same moment, exactly one has it and the other is told
    who does; never two records (several rounds, each started together)."""
    import threading

    from ptdesk.core.sharing import booking
    from ptdesk.errors import Conflict

    people = {u: core(person(two_gpus, tmp_path, u)) for u in ("ann", "bob")}

    def book(who: str, gate: threading.Barrier, start: str, end: str, results: dict[str, str]) -> None:
        gate.wait()
        try:
            results[who] = booking.reserve(people[who], "0", start, end, owner=who).owner
        except Conflict as exc:
            results[who] = exc.message

    try:
        for hours in (2, 4, 6, 8):
            gate, results = threading.Barrier(2), {}
            threads = [threading.Thread(target=book, args=(u, gate, at(hours), at(hours + 1), results))
                       for u in people]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            winners = [who for who, said in results.items() if said == who]
            assert len(winners) == 1, results
            loser = next(who for who in people if who not in winners)
            assert results[loser].startswith(f"GPU 0 is reserved by {winners[0]} "), results
            slot = [r for r in booking.reservations(people["ann"]) if r.start > time.time() + 3600 * (hours - 0.5)
                    and r.start < time.time() + 3600 * (hours + 0.5)]
            assert [(r.owner, r.gpus) for r in slot] == [(winners[0], (0,))]
    finally:
        for ws in people.values():
            ws.close()
