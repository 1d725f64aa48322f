"""The queue's order, who gets which GPU, why the others wait, and the times people type (pure)."""

from __future__ import annotations

from datetime import datetime

import pytest

from ptdesk.core.base.gpu_models import GpuInventory, GpuLoad
from ptdesk.core.sharing.gpu_queue import QueueEntry, fair_order, plan
from ptdesk.core.sharing.reservations import Reservation, parse_end, parse_when
from ptdesk.errors import InvalidInput

NOW = datetime(2026, 12, 7, 12, 30).astimezone().timestamp()


def box(n: int = 4) -> GpuInventory:
    return GpuInventory(True, None, tuple(GpuLoad(i, 0.0, 0.0) for i in range(n)))


def entry(name: str, owner: str, t: float, request: str = "auto") -> QueueEntry:
    return QueueEntry(name=name, owner=owner, kind="ssh", container_id=f"id-{name}", request=request, submitted=t)


def test_one_persons_ten_requests_do_not_starve_another_persons_one() -> None:
    queue = [entry(f"ann-{i}", "ann", i) for i in range(10)] + [entry("bob-1", "bob", 10), entry("cy-1", "cy", 11)]
    ordered = [e.name for e in fair_order(queue)]
    assert ordered[:5] == ["ann-0", "bob-1", "cy-1", "ann-1", "ann-2"]
    assert [e.position for e in fair_order(queue)] == list(range(1, 13))


def test_the_head_gets_the_free_gpus_and_later_requests_do_not_jump_it() -> None:
    # GPU 0 and 1 held; the head wants two GPUs: only 2 and 3 are free, and both are held back for it.
    queue = fair_order([entry("big", "ann", 1, "0,2"), entry("small", "bob", 2)])
    result = plan(queue, {0: "train", 1: "eval"}, box())
    assert result.admit == ((queue[1], (3,)),)  # GPU 3 nobody earlier waits for: backfilled
    assert result.claimed[2] == "queued 'big' (ann)"  # held back for the head
    assert result.waiting[0].reason == "needs GPUs 0,2: 2 free; GPU 0 held by 'train'"


def test_a_count_request_waits_with_its_reason_and_withholds_what_it_would_take() -> None:
    queue = fair_order([entry("two", "ann", 1, "all"), entry("one", "bob", 2)])
    result = plan(queue, {0: "train"}, box(2))
    assert result.admit == ()  # GPU 1 is held back for the head, which needs the whole box
    assert result.waiting[0].reason.startswith("needs all 2 GPUs: 1 free; GPU 0 held by 'train'")
    assert "GPU 1 held by queued 'two' (ann)" in result.waiting[1].reason


def test_a_reservation_holds_its_gpu_for_others_but_not_for_its_owner() -> None:
    ann = Reservation("r1", (0,), NOW - 60, NOW + 3600, "ann")
    queue = fair_order([entry("b", "bob", 1, "0"), entry("a", "ann", 2, "0")])
    result = plan(queue, {}, box(1), [ann], NOW)
    assert [(e.name, gpus) for e, gpus in result.admit] == [("a", (0,))]
    assert "GPU 0 reserved by ann" in result.waiting[0].reason


def test_auto_prefers_gpus_nobody_reserved_for_later() -> None:
    later = Reservation("r1", (0,), NOW + 600, NOW + 3600, "ann")
    result = plan(fair_order([entry("b", "bob", 1)]), {}, box(2), [later], NOW)
    assert result.admit[0][1] == (1,)


@pytest.mark.parametrize("typed, expected", [
    ("14:00", datetime(2026, 12, 7, 14, 0)), ("tomorrow 9:00", datetime(2026, 12, 8, 9, 0)),
    ("2026-12-09T10:30", datetime(2026, 12, 9, 10, 30)), ("2026-12-09 10:30", datetime(2026, 12, 9, 10, 30)),
    ("tue 9:00", datetime(2026, 12, 8, 9, 0)),
])
def test_times_people_type_are_the_workstations_time(typed: str, expected: datetime) -> None:
    assert parse_when(typed, NOW) == expected.astimezone().timestamp()


@pytest.mark.parametrize("typed", ["25:00", "tomorow 9:00", "9", "", "soon"])
def test_a_malformed_time_is_one_sentence_naming_the_forms(typed: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_when(typed, NOW)
    assert "14:00" in (caught.value.hint or "")


def test_an_end_may_be_a_length() -> None:
    assert parse_end("4h", NOW, NOW) == NOW + 4 * 3600
