"""Unit tests of ingest admission in core.admission: who is refused at which lag, how long
they are told to wait, and each tenant's recent publishes."""

from __future__ import annotations

import pytest

from core.admission import (
    MAX_RETRY_AFTER_S,
    OTHER_TENANTS,
    LagSample,
    Pressure,
    RecentPublishes,
    judge,
    pressure,
    retry_after_s,
)

LIMIT = 1000


@pytest.mark.parametrize(
    ("lag", "tenant_count", "total", "tenants", "reason"),
    [
        # under the limit: everyone, however much it publishes
        (999, 900, 1000, 2, None),
        (0, 1, 1, 1, None),
        # from the limit: the tenant above its share is refused, the others are not
        (1000, 900, 1000, 2, "fair_share"),
        (1500, 100, 1000, 2, None),
        (1999, 900, 1000, 10, "fair_share"),
        (1999, 101, 1000, 10, "fair_share"),
        (1999, 100, 1000, 10, None),  # exactly its share
        (1999, 5000, 5000, 1, None),  # a lone tenant is at its share
        # from twice the limit: everyone
        (2000, 1, 1000, 10, "overloaded"),
        (2000, 5000, 5000, 1, "overloaded"),
        (10**9, 900, 1000, 2, "overloaded"),
    ],
)
def test_who_is_refused_at_which_lag(
    lag: int, tenant_count: int, total: int, tenants: int, reason: str | None
) -> None:
    refusal = judge(
        LIMIT, Pressure(lag, 100.0), tenant_count=tenant_count, total=total, tenants=tenants
    )
    assert (None if refusal is None else refusal.reason) == reason
    if refusal is not None:
        assert (refusal.lag, refusal.limit) == (lag, LIMIT)
        assert str(LIMIT) in refusal.detail


def test_admission_can_be_switched_off_and_fails_open() -> None:
    overloaded = Pressure(10**9, 0.0)
    assert judge(0, overloaded, tenant_count=9, total=9, tenants=1) is None  # switched off
    assert judge(LIMIT, None, tenant_count=9, total=9, tenants=1) is None  # lag unknown


@pytest.mark.parametrize(
    ("lag", "tenant_count", "drain_per_s", "retry_after"),
    [
        # fair share: until the lag is back under the limit
        (1000, 900, 100.0, 1),  # one record to go: at least a second
        (1500, 900, 100.0, 6),  # 501 records at 100/s, rounded up
        (1999, 900, 10.0, 60),  # 1000 s, bounded to a minute
        (1500, 900, 0.0, MAX_RETRY_AFTER_S),  # nothing consumes
        # overloaded: until it is back under twice the limit
        (2000, 1, 100.0, 1),
        (2250, 1, 50.0, 6),
        (9000, 1, 0.0, MAX_RETRY_AFTER_S),
    ],
)
def test_retry_after_is_the_time_to_drain_below_the_threshold(
    lag: int, tenant_count: int, drain_per_s: float, retry_after: int
) -> None:
    refusal = judge(
        LIMIT, Pressure(lag, drain_per_s), tenant_count=tenant_count, total=1000, tenants=2
    )
    assert refusal is not None
    assert refusal.retry_after_s == retry_after
    assert f"retry after {retry_after} s" in refusal.detail


@pytest.mark.parametrize(
    ("excess", "drain_per_s", "expected"),
    [(1, 1e9, 1), (100, 100.0, 1), (101, 100.0, 2), (10**6, 1.0, 60), (5, -1.0, 60)],
)
def test_retry_after_is_whole_seconds_from_1_to_60(
    excess: int, drain_per_s: float, expected: int
) -> None:
    assert retry_after_s(excess, drain_per_s) == expected


def test_pressure_is_the_newest_lag_and_the_rate_consumed_between_samples() -> None:
    old = LagSample(at_s=10.0, route=500, deliver=100, consumed=4000)
    new = LagSample(at_s=14.0, route=300, deliver=700, consumed=6000)
    assert pressure(old, new) == Pressure(1000, 500.0)
    assert pressure(new, new) == Pressure(1000, 0.0)
    # offsets moved back (a group reset): no negative rate
    assert pressure(new, LagSample(at_s=15.0, route=0, deliver=0, consumed=0)).drain_per_s == 0


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_recent_publishes_count_each_tenant_over_the_window() -> None:
    clock = Clock()
    recent = RecentPublishes(clock=clock, window_s=10.0, slots=10)
    assert [recent.record("hostile") for _ in range(5)] == [1, 2, 3, 4, 5]
    clock.now_s += 4.0
    assert recent.record("quiet") == 1
    assert (recent.total, recent.tenants) == (6, 2)
    clock.now_s += 6.5  # the hostile burst's slot has left the window, quiet's has not
    assert recent.record("hostile") == 1
    assert (recent.total, recent.tenants) == (2, 2)
    clock.now_s += 100.0  # everything has left
    assert recent.record("quiet") == 1
    assert (recent.total, recent.tenants) == (1, 1)


def test_tenants_beyond_the_cap_share_one_count() -> None:
    recent = RecentPublishes(clock=Clock(), max_tenants=2)
    recent.record("a")
    recent.record("b")
    assert recent.record("c") == 1
    assert recent.record("d") == 2  # c and d together
    assert recent.record("a") == 2
    assert recent.tenants == 3
    assert recent.record(OTHER_TENANTS) == 3


def test_a_burst_is_refused_while_a_quiet_tenant_is_admitted() -> None:
    """The table's rule driven by the counter, as the API does on each publish."""
    recent = RecentPublishes(clock=Clock())
    for _ in range(300):
        recent.record("hostile")
    over = Pressure(LIMIT + 10, 100.0)

    def refused(tenant: str) -> bool:
        count = recent.record(tenant)
        verdict = judge(LIMIT, over, tenant_count=count, total=recent.total, tenants=recent.tenants)
        return verdict is not None

    assert [refused("quiet") for _ in range(3)] == [False, False, False]
    assert refused("hostile")
    assert not refused("other")
