"""Ingest admission: may `POST /v1/events` take one more event while delivery lags behind?

Pure: the shell samples the lag (events not yet routed plus commands not yet consumed by the
deliverers), counts each tenant's recent publishes with `RecentPublishes`, and asks `judge`.
Under the limit everyone is admitted; from the limit to twice the limit only the tenants
publishing above their fair share of the recent publishes are refused, so one tenant's burst
never gets every other tenant refused; from twice the limit everyone is.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

MIN_RETRY_AFTER_S: Final = 1
MAX_RETRY_AFTER_S: Final = 60
"""Retry-After's bounds: a client never retries at once, and never waits out a minute's
estimate that the next sample may already have changed."""
OTHER_TENANTS: Final = ""
"""The one count shared by the tenants beyond `RecentPublishes`' cap (no tenant is named "")."""

RefusalReason = Literal["fair_share", "overloaded"]


@dataclass(frozen=True, slots=True)
class LagSample:
    """One reading of the pipeline, at monotonic time `at_s`: `route` events not yet routed,
    `deliver` commands not yet consumed by the deliverers, and `consumed`, the sum of both
    groups' committed offsets (it grows by what the two stages consume)."""

    at_s: float
    route: int
    deliver: int
    consumed: int

    @property
    def lag(self) -> int:
        return self.route + self.deliver


@dataclass(frozen=True, slots=True)
class Pressure:
    """The lag admission judges by, and how fast the pipeline consumed lately (records/s)."""

    lag: int
    drain_per_s: float


def pressure(oldest: LagSample, newest: LagSample) -> Pressure:
    """The newest lag, and the drain rate between two samples. A group that moved back (its
    offsets reset) or a partition added makes `consumed` jump: never a negative rate."""
    elapsed_s = newest.at_s - oldest.at_s
    consumed = max(0, newest.consumed - oldest.consumed)
    return Pressure(newest.lag, consumed / elapsed_s if elapsed_s > 0 else 0.0)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Not now: `reason` says which rule refused, `retry_after_s` when the lag should be back
    below its threshold (whole seconds, as `Retry-After`)."""

    reason: RefusalReason
    retry_after_s: int
    lag: int
    limit: int
    detail: str


def retry_after_s(excess: int, drain_per_s: float) -> int:
    """Seconds the pipeline needs to consume `excess` records at `drain_per_s`, rounded up
    and bounded; the most when nothing drains (no router or deliverer is consuming)."""
    if drain_per_s <= 0:
        return MAX_RETRY_AFTER_S
    return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, math.ceil(excess / drain_per_s)))


def judge(
    max_lag: int,
    current: Pressure | None,
    *,
    tenant_count: int,
    total: int,
    tenants: int,
) -> Refusal | None:
    """Whether a publish is refused. `tenant_count` is its tenant's publishes in the window
    (this one included), `total` every tenant's and `tenants` how many published. No limit
    (0) or no known pressure (the sampler cannot reach Kafka) admits: admission fails open.

    Above its fair share means above the mean of the tenants' counts (`tenant_count * tenants
    > total`): a lone tenant is at its share and is refused only from twice the limit, and
    tenants publishing alike take turns as their counts move around the mean.
    """
    if max_lag <= 0 or current is None or current.lag < max_lag:
        return None
    if current.lag >= 2 * max_lag:
        wait_s = retry_after_s(current.lag - 2 * max_lag + 1, current.drain_per_s)
        return Refusal(
            "overloaded",
            wait_s,
            current.lag,
            max_lag,
            f"delivery lags {current.lag} events and commands behind, over twice the limit"
            f" ({max_lag}): every publish is refused; retry after {wait_s} s",
        )
    if tenant_count * tenants <= total:
        return None
    wait_s = retry_after_s(current.lag - max_lag + 1, current.drain_per_s)
    return Refusal(
        "fair_share",
        wait_s,
        current.lag,
        max_lag,
        f"delivery lags {current.lag} events and commands behind, over the limit ({max_lag}),"
        f" and this tenant published {tenant_count} of the last {total} events, above its"
        f" share among {tenants} tenants; retry after {wait_s} s",
    )


class RecentPublishes:
    """Each tenant's publishes over the last `window_s`, in `slots` time slots: a slot that
    falls out of the window is taken off the totals, so counting one publish is a slot
    change now and then and two dict updates.

    Memory is bounded twice: by the publishes of one window, and by `max_tenants` named
    counts; the tenants beyond share one count (`OTHER_TENANTS`), which, being their sum, is
    the first refused when over the limit.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        window_s: float = 10.0,
        slots: int = 10,
        max_tenants: int = 10_000,
    ) -> None:
        self._clock = clock
        self._slot_s = window_s / slots
        self._slots = slots
        self._max_tenants = max_tenants
        self._window: deque[tuple[int, dict[str, int]]] = deque()
        self._totals: dict[str, int] = {}
        self.total = 0
        """Every tenant's publishes in the window."""

    @property
    def tenants(self) -> int:
        """How many tenants (counts) published in the window."""
        return len(self._totals)

    def record(self, tenant: str) -> int:
        """Count one publish of `tenant`; its publishes in the window, this one included."""
        slot = int(self._clock() // self._slot_s)
        if not self._window or self._window[-1][0] != slot:
            self._advance(slot)
        if tenant not in self._totals and len(self._totals) >= self._max_tenants:
            tenant = OTHER_TENANTS
        counts = self._window[-1][1]
        counts[tenant] = counts.get(tenant, 0) + 1
        count = self._totals[tenant] = self._totals.get(tenant, 0) + 1
        self.total += 1
        return count

    def _advance(self, slot: int) -> None:
        while self._window and self._window[0][0] <= slot - self._slots:
            _, expired = self._window.popleft()
            for tenant, count in expired.items():
                left = self._totals[tenant] - count
                if left:
                    self._totals[tenant] = left
                else:
                    del self._totals[tenant]
                self.total -= count
        self._window.append((slot, {}))
