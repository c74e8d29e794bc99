"""The router's linger: nothing while the rate is low, growing to its maximum under load."""

from __future__ import annotations

import pytest

from router.batch import Linger


def test_an_idle_router_does_not_linger() -> None:
    linger = Linger(max_s=0.05)
    assert linger.next_s(now=100.0) == 0.0


def test_a_rate_below_the_quiet_one_does_not_linger() -> None:
    linger = Linger(max_s=0.05, quiet_per_s=600, busy_per_s=1200)
    for k in range(100):  # 500 events in the last second
        linger.read(now=99.0 + k / 100, records=5)
    assert linger.next_s(now=100.0) == 0.0


def test_the_linger_grows_with_the_rate_up_to_its_maximum() -> None:
    def at(rate: int) -> float:
        linger = Linger(max_s=0.05, quiet_per_s=600, busy_per_s=1200)
        for k in range(10):
            linger.read(now=99.05 + k / 10, records=rate // 10)
        return linger.next_s(now=100.0)

    assert at(900) == pytest.approx(0.025)
    assert at(1200) == pytest.approx(0.05)
    assert at(5000) == pytest.approx(0.05)
    assert 0 < at(700) < at(800) < at(1100)


def test_reads_older_than_the_window_no_longer_count() -> None:
    linger = Linger(max_s=0.05, quiet_per_s=600, busy_per_s=1200)
    linger.read(now=10.0, records=2000)
    assert linger.next_s(now=10.5) == pytest.approx(0.05)
    assert linger.next_s(now=11.0) == 0.0
    linger.read(now=11.2, records=100)
    assert linger.next_s(now=11.3) == 0.0


def test_a_zero_maximum_never_lingers() -> None:
    linger = Linger(max_s=0.0)
    linger.read(now=1.0, records=10_000)
    assert linger.next_s(now=1.1) == 0.0


def test_batches_come_no_closer_than_the_interval_and_an_idle_router_waits_for_nothing() -> None:
    linger = Linger(max_s=0.05, min_interval_s=0.01, spaced_per_s=500)
    linger.read(now=5.0, records=600)
    assert linger.next_s(now=5.004) == pytest.approx(0.006)
    assert linger.next_s(now=5.02) == 0.0


def test_the_spacing_grows_with_the_rate_up_to_the_interval() -> None:
    def linger_at(rate: int) -> Linger:
        """A second at `rate`, read in ten batches, the last at 9.91."""
        linger = Linger(max_s=0.05, min_interval_s=0.04, spaced_per_s=500)
        for k in range(10):
            linger.read(now=9.01 + k / 10, records=rate // 10)
        return linger

    def interval(rate: int) -> float:
        return linger_at(rate).next_s(now=9.911) + 0.001  # asked 1 ms after the last read

    assert interval(50) == pytest.approx(0.004)
    assert interval(250) == pytest.approx(0.02)
    assert interval(500) == pytest.approx(0.04)
    assert interval(590) == pytest.approx(0.04), "the bound on transactions a second"
    assert linger_at(500).next_s(now=9.96) == 0.0, "the interval has passed: no wait"


def test_the_interval_never_exceeds_the_maximum_linger() -> None:
    linger = Linger(max_s=0.002, min_interval_s=0.01, spaced_per_s=500)
    linger.read(now=5.0, records=600)
    assert linger.next_s(now=5.001) == pytest.approx(0.002)
