"""The backlog's turns and timers (core.backlog_schedule): fair, FIFO, bounded by subscriptions."""

from __future__ import annotations

from core.backlog_schedule import BacklogSchedule


def test_subscriptions_take_turns_in_the_order_they_woke() -> None:
    schedule = BacklogSchedule()
    for sub_id in ("a", "b", "c"):
        schedule.wake(sub_id)
    schedule.wake("a")  # already in line: keeps its place
    assert list(schedule.turns(2)) == ["a", "b"]
    schedule.wake("a")  # more to do: to the back of the line
    assert list(schedule.turns(10)) == ["c", "a"]
    assert list(schedule.turns(10)) == []


def test_a_turn_not_taken_stays_in_line() -> None:
    schedule = BacklogSchedule()
    for sub_id in ("a", "b", "c"):
        schedule.wake(sub_id)
    for sub_id in schedule.turns(3):
        assert sub_id == "a"
        break  # the feeder ran out of budget after one
    assert schedule.is_waiting_turn("b")
    assert list(schedule.turns(3)) == ["b", "c"]


def test_timers_fire_in_due_order_and_only_the_earliest_counts() -> None:
    schedule = BacklogSchedule()
    schedule.due_at("late", 5_000, now_ms=0)
    schedule.due_at("soon", 1_000, now_ms=0)
    schedule.due_at("soon", 3_000, now_ms=0)  # later than its known timer: ignored
    schedule.due_at("late", 2_000, now_ms=0)  # earlier: replaces it
    schedule.fire(999)
    assert list(schedule.turns(9)) == []
    schedule.fire(2_000)
    assert list(schedule.turns(9)) == ["soon", "late"]
    schedule.fire(10_000)
    assert list(schedule.turns(9)) == [], "superseded timers do not fire again"


def test_work_due_now_gets_a_turn_at_once() -> None:
    schedule = BacklogSchedule()
    schedule.due_at("a", 100, now_ms=100)
    assert list(schedule.turns(9)) == ["a"]


def test_counts_are_per_subscription_and_never_negative() -> None:
    schedule = BacklogSchedule()
    schedule.added("a", 3)
    schedule.added("b")
    schedule.removed("a")
    assert (schedule.count("a"), schedule.count("b"), schedule.depth) == (2, 1, 3)
    schedule.forget({"a": 2, "b": 5})
    assert (schedule.count("a"), schedule.count("b"), schedule.depth) == (0, 0, 0)
    assert schedule.backlogged() == []
    schedule.recount("c", 7)
    assert schedule.deepest(5) == [("c", 7)]
    schedule.recount("c", 0)
    schedule.discard("c")
    assert schedule.backlogged() == []
