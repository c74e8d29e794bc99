"""Unit tests of the lane bookkeeping in core.lanes: commit positions, admission, rate, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.lanes import (
    EndpointHealth,
    PartitionOffsets,
    RateLimiter,
    admit,
    feed_room,
    lane_capacity,
    lane_share,
    next_feed_cap,
    next_request_limit,
    stale,
)

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def test_nothing_read_means_nothing_to_commit() -> None:
    offsets = PartitionOffsets()
    assert offsets.position() is None
    assert offsets.to_commit() is None


def test_commit_stops_at_the_first_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.read(offset)
    offsets.finish(11)
    offsets.finish(13)
    assert offsets.position() == 10
    offsets.finish(10)
    assert offsets.position() == 12
    offsets.finish(12)
    assert offsets.position() == 14


def test_gaps_in_offsets_are_tolerated() -> None:
    offsets = PartitionOffsets()
    for offset in (3, 7, 20):  # transaction markers and held retries leave gaps
        offsets.read(offset)
    offsets.finish(7)
    offsets.finish(3)
    assert offsets.position() == 20
    offsets.finish(20)
    assert offsets.position() == 21


def test_to_commit_reports_each_position_once() -> None:
    offsets = PartitionOffsets()
    offsets.read(0)
    offsets.finish(0)
    assert offsets.to_commit() == 1
    offsets.committed(1)
    assert offsets.to_commit() is None
    offsets.read(1)
    assert offsets.to_commit() is None  # still 1: offset 1 is unfinished
    offsets.finish(1)
    assert offsets.to_commit() == 2


def test_reads_must_ascend_and_finishes_must_match() -> None:
    offsets = PartitionOffsets()
    offsets.read(5)
    assert offsets.has_read(5)
    assert offsets.has_read(4)
    assert not offsets.has_read(6)
    with pytest.raises(ValueError, match="ascend"):
        offsets.read(5)
    with pytest.raises(ValueError, match="not read"):
        offsets.finish(6)
    offsets.finish(5)
    with pytest.raises(ValueError, match="already finished"):
        offsets.finish(5)


def test_many_finished_offsets_behind_one_blocked_one_keep_the_position() -> None:
    offsets = PartitionOffsets()
    for offset in range(10_000):
        offsets.read(offset)
    for offset in range(1, 10_000):
        offsets.finish(offset)
    assert offsets.position() == 0
    offsets.finish(0)
    assert offsets.position() == 10_000


def test_lane_capacity_is_a_share_of_the_budget_but_at_least_four_rounds() -> None:
    assert lane_capacity(max_in_flight=10_000, lane_concurrency=16) == 1000
    assert lane_capacity(max_in_flight=100, lane_concurrency=16) == 64
    assert lane_capacity(max_in_flight=1, lane_concurrency=1) == 4


@pytest.mark.parametrize(
    ("depth", "ordered", "backlogged", "expected"),
    [
        (0, False, False, "lane"),
        (9, False, False, "lane"),
        (10, False, False, "backlog"),
        (0, False, True, "backlog"),
        (0, True, False, "lane"),
        (1, True, False, "backlog"),
        (0, True, True, "backlog"),
    ],
)
def test_admission(depth: int, ordered: bool, backlogged: bool, expected: str) -> None:
    assert admit(depth=depth, capacity=10, ordered=ordered, backlogged=backlogged) == expected


@pytest.mark.parametrize(
    ("depth", "ordered", "rate_limit", "expected"),
    [
        (0, False, None, 32),
        (20, False, None, 12),
        (40, False, None, 0),
        (0, True, None, 1),
        (1, True, None, 0),
        (0, False, 2.5, 3),
        (3, False, 2.5, 0),
        (0, False, 0.01, 1),
        (0, False, 1000.0, 32),
    ],
)
def test_feed_room(depth: int, ordered: bool, rate_limit: float | None, expected: int) -> None:
    room = feed_room(depth=depth, concurrency=16, ordered=ordered, rate_limit=rate_limit)
    assert room == expected


def test_a_command_goes_stale_after_waiting_its_time() -> None:
    assert not stale(queued_at=10.0, now=10.9, after_s=1.0)
    assert stale(queued_at=10.0, now=11.0, after_s=1.0)


def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(4.0)
    assert limiter.reserve(100.0) == 0.0
    assert limiter.reserve(100.0) == pytest.approx(0.25)
    assert limiter.reserve(100.0) == pytest.approx(0.5)
    assert limiter.reserve(101.0) == 0.0  # idle long enough: no debt carried over


def test_rate_limiter_burst() -> None:
    limiter = RateLimiter(2.0, burst=3)
    waits = [limiter.reserve(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_rate_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1, burst=0)


def test_health_counts_from_the_first_failure_since_the_last_success() -> None:
    health = EndpointHealth().after_failure(NOW)
    later = NOW + timedelta(seconds=30)
    health = health.after_failure(later)
    assert health.failing_since == NOW
    assert not health.should_disable(NOW + timedelta(seconds=59), window_s=60)
    assert health.should_disable(NOW + timedelta(seconds=60), window_s=60)
    healed = health.after_success()
    assert healed.failing_since is None
    assert not healed.should_disable(NOW + timedelta(days=10), window_s=60)


def test_the_feed_cap_halves_on_a_busy_turn_and_grows_by_one_otherwise() -> None:
    def step(cap: int, gap_s: float) -> int:
        return next_feed_cap(cap, gap_s=gap_s, busy_s=0.025, floor=4, ceiling=100)

    assert step(64, 0.030) == 32
    assert step(5, 0.030) == 4, "never below the floor: a backlog always drains"
    assert step(4, 0.010) == 5
    assert step(100, 0.001) == 100


def test_the_request_limit_falls_by_a_tenth_on_a_busy_turn_and_grows_by_one_otherwise() -> None:
    def step(limit: int, gap_s: float) -> int:
        return next_request_limit(limit, gap_s=gap_s, busy_s=0.025, floor=64, ceiling=1024)

    assert step(1000, 0.030) == 900
    assert step(65, 0.030) == 64, "never below the floor"
    assert step(64, 0.010) == 65
    assert step(1024, 0.001) == 1024


def test_a_lane_runs_its_concurrency_until_the_lanes_with_work_would_pass_the_limit() -> None:
    assert lane_share(concurrency=16, limit=1024, lanes=10) == 16
    assert lane_share(concurrency=16, limit=400, lanes=100) == 4
    assert lane_share(concurrency=1, limit=400, lanes=2) == 1, "an ordered lane stays at one"
    assert lane_share(concurrency=16, limit=64, lanes=500) == 1, "never below one request"
