"""The hostile-tenant scenario's figures: its burst, and the other subscriptions' criterion.

Subscription 0 is ordered and its endpoint never answers (`/stall/`), 1 answers 503 with
`Retry-After: 290` (`/throttle/`), 2 is healthy and gets a burst of `BURST_EVENTS` on top of
its share (`/burst/`); the other 97 are healthy, as in the healthy scenario. The criterion
compares those 97 with the same 97 subscriptions of the healthy scenario in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Final

from bench.e2e_stats import PhaseStats, Published, Row

HOSTILE_KINDS: Final = ("stall", "throttle", "burst")
"""Path kinds of subscriptions 0, 1, 2; every later one is `ok`."""
ORDERED_KINDS: Final = frozenset({"stall"})
BURST_EVENTS: Final = 20_000
KEPT_MIN: Final = 0.90
P99_RATIO_MAX: Final = 1.5
CRITERION: Final = (
    "the other {others} keep at least 90 % of their healthy-scenario throughput "
    "with p99 at most 1.5x the healthy scenario's"
)


@dataclass(frozen=True, slots=True)
class Others:
    """A phase's figures with `healthy_*` over the subscriptions after the hostile ones."""

    stats: PhaseStats
    p99_ms_by_second: tuple[float, ...]  # their p99 per second of publish time


@dataclass(frozen=True, slots=True)
class BurstStats:
    """The burst: how long the router took to route it and the deliverer to deliver it."""

    events: int
    routed_s: float  # first publish -> the router's counter has counted them all
    delivered: int  # first arrivals when the benchmark stopped waiting
    drained_s: float  # first publish -> last first arrival
    deliveries_per_s: float

    @staticmethod
    def of(rows: Mapping[str, Row], published: Published, routed_s: float) -> BurstStats:
        arrivals = [rows[i][1] for i in published.ids if i in rows]
        drained_s = max(arrivals) - published.started_s if arrivals else math.nan
        return BurstStats(
            events=len(published.ids),
            routed_s=round(routed_s, 2),
            delivered=len(arrivals),
            drained_s=round(drained_s, 2),
            deliveries_per_s=round(len(arrivals) / drained_s, 1) if arrivals else 0.0,
        )

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One phase: the other subscriptions in the hostile scenario against the healthy one."""

    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    healthy_deliveries_per_s: float
    healthy_p50_ms: float
    healthy_p99_ms: float
    kept_throughput_pct: float
    p99_ratio: float
    met: bool
    p99_ms_by_second: tuple[float, ...]
    healthy_p99_ms_by_second: tuple[float, ...]

    @staticmethod
    def of(others: Others, healthy_others: Others) -> Comparison:
        hostile, healthy = others.stats, healthy_others.stats
        kept = hostile.healthy_deliveries_per_s / max(healthy.healthy_deliveries_per_s, 1e-9)
        p99_ratio = hostile.healthy_latency_ms.p99 / max(healthy.healthy_latency_ms.p99, 1e-9)
        return Comparison(
            deliveries_per_s=hostile.healthy_deliveries_per_s,
            p50_ms=hostile.healthy_latency_ms.p50,
            p99_ms=hostile.healthy_latency_ms.p99,
            healthy_deliveries_per_s=healthy.healthy_deliveries_per_s,
            healthy_p50_ms=healthy.healthy_latency_ms.p50,
            healthy_p99_ms=healthy.healthy_latency_ms.p99,
            kept_throughput_pct=round(100 * kept, 1),
            p99_ratio=round(p99_ratio, 2),
            met=kept >= KEPT_MIN and p99_ratio <= P99_RATIO_MAX,
            p99_ms_by_second=others.p99_ms_by_second,
            healthy_p99_ms_by_second=healthy_others.p99_ms_by_second,
        )

    def as_json(self) -> dict[str, object]:
        return asdict(self)
