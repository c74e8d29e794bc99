"""Unit tests of the retry schedule, tiers and Retry-After parsing in core.retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.retry import (
    DEFAULT_SCHEDULE_S,
    TIER_DELAYS_S,
    TIERS,
    RetrySchedule,
    retry_after_s,
)

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def test_default_schedule_matches_the_design() -> None:
    assert list(DEFAULT_SCHEDULE_S) == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert TIERS == ("5s", "5m", "30m", "2h", "5h", "10h")
    assert [TIER_DELAYS_S[tier] for tier in TIERS] == [5, 300, 1800, 7200, 18000, 36000]
    assert RetrySchedule().max_attempts == 8


@pytest.mark.parametrize(("attempt", "nominal_s"), list(enumerate(DEFAULT_SCHEDULE_S, start=1)))
def test_midpoint_rand_gives_the_nominal_delay(attempt: int, nominal_s: float) -> None:
    assert RetrySchedule().next_delay_s(attempt, 0.5) == pytest.approx(nominal_s)


def test_jitter_bounds() -> None:
    schedule = RetrySchedule()
    assert schedule.next_delay_s(2, 0.0) == pytest.approx(240.0)
    assert schedule.next_delay_s(2, 0.999999) == pytest.approx(360.0, rel=1e-5)
    assert RetrySchedule(jitter=0.0).next_delay_s(2, 0.0) == 300


def test_exhausted_after_the_last_delay() -> None:
    schedule = RetrySchedule()
    assert schedule.next_delay_s(7, 0.5) is not None
    assert schedule.next_delay_s(8, 0.5) is None
    assert schedule.next_delay_s(100, 0.5) is None
    assert RetrySchedule(delays_s=()).next_delay_s(1, 0.5) is None


@pytest.mark.parametrize(("attempt", "rand"), [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.1)])
def test_bad_arguments_are_rejected(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        RetrySchedule().next_delay_s(attempt, rand)


def test_bad_schedules_are_rejected() -> None:
    with pytest.raises(ValueError):
        RetrySchedule(delays_s=(5, -1))
    with pytest.raises(ValueError):
        RetrySchedule(jitter=1.0)
    with pytest.raises(ValueError):
        RetrySchedule().scaled(0)


def test_scaled() -> None:
    fast = RetrySchedule().scaled(0.001)
    assert fast.delays_s == pytest.approx((0.005, 0.3, 1.8, 7.2, 18.0, 36.0, 36.0))
    assert fast.jitter == 0.2
    assert RetrySchedule().delays_s == DEFAULT_SCHEDULE_S, "scaling must not mutate the original"


@pytest.mark.parametrize(
    ("header", "expected_s"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("3600", 600.0),  # clamped to max_s
        ("9" * 5000, 600.0),  # absurdly long, still clamped, no overflow
        ("Tue, 04 Mar 2025 12:02:00 GMT", 120.0),
        ("Tue, 04 Mar 2025 14:00:00 +0200", 0.0),  # 12:00 UTC: now
        ("Tue, 04 Mar 2025 11:00:00 GMT", 0.0),  # in the past: clamped to 0
        ("Wed, 05 Mar 2025 12:00:00 GMT", 600.0),
        ("Tue, 04 Mar 2025 12:01:00 -0000", 60.0),
    ],
)
def test_retry_after(header: str | None, expected_s: float | None) -> None:
    assert retry_after_s(header, now=NOW, max_s=600.0) == expected_s


def test_retry_after_with_non_utc_now() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert retry_after_s("Tue, 04 Mar 2025 12:01:00 GMT", now=now, max_s=600.0) == 60.0


def test_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        retry_after_s("5", now=datetime(2025, 1, 1), max_s=10.0)
