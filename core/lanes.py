"""Bookkeeping rules of the deliverer's lanes: commit positions, admission, rate, endpoint health.

Pure: the clock is passed in. The deliverer's shell owns one `PartitionOffsets` per assigned
partition, one `RateLimiter` and one `EndpointHealth` per subscription lane.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias

# --- commit positions ---------------------------------------------------------------------


class PartitionOffsets:
    """Offsets of one partition read and not yet finished; what may be committed.

    The commit position is the smallest unfinished offset read, or one past the last offset
    read when every read offset is finished: the highest contiguous finished offset + 1,
    tolerating gaps in the offsets (transaction markers, compaction, held retries).
    Memory is proportional to the unfinished offsets only.
    """

    __slots__ = ("_committed", "_heap", "_last_read", "_pending")

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._heap: list[int] = []
        self._last_read: int | None = None
        self._committed: int | None = None

    def read(self, offset: int) -> None:
        if self._last_read is not None and offset <= self._last_read:
            raise ValueError(f"offset {offset} read after {self._last_read}: reads must ascend")
        self._last_read = offset
        self._pending.add(offset)
        heapq.heappush(self._heap, offset)

    def finish(self, offset: int) -> None:
        if offset not in self._pending:
            raise ValueError(f"offset {offset} was not read or is already finished")
        self._pending.discard(offset)
        while self._heap and self._heap[0] not in self._pending:
            heapq.heappop(self._heap)

    def has_read(self, offset: int) -> bool:
        """Whether `offset` is at or below the last offset read (a re-fetch to skip)."""
        return self._last_read is not None and offset <= self._last_read

    def position(self) -> int | None:
        """The offset to commit (next to read after the finished prefix), None if none read."""
        if self._heap:
            return self._heap[0]
        return None if self._last_read is None else self._last_read + 1

    def to_commit(self) -> int | None:
        """The position when it moved since the last `committed(...)`, else None."""
        position = self.position()
        if position is None or position == self._committed:
            return None
        return position

    def committed(self, position: int) -> None:
        self._committed = position


# --- lane admission -----------------------------------------------------------------------


def lane_capacity(*, max_in_flight: int, lane_concurrency: int) -> int:
    """Commands read from Kafka one subscription lane may hold in memory: a tenth of the
    process budget, at least 4 rounds of its concurrency."""
    return max(4 * lane_concurrency, max_in_flight // 10, 1)


Admission: TypeAlias = Literal["lane", "backlog"]


def admit(*, depth: int, capacity: int, ordered: bool, backlogged: bool) -> Admission:
    """Where a command read from Kafka goes, for a lane holding `depth` commands.

    Into the lane when it can start soon; otherwise into the subscription's durable
    backlog, and the partition moves on. A subscription with a backlog sends every new
    command behind it (first come, first served). An ordered lane holds one command at a
    time, so anything arriving while it is busy waits in the backlog in offset order.
    """
    if backlogged:
        return "backlog"
    if ordered:
        return "lane" if depth == 0 else "backlog"
    return "lane" if depth < capacity else "backlog"


def feed_room(
    *, depth: int, concurrency: int, ordered: bool, rate_limit: float | None = None
) -> int:
    """How many backlogged commands to lease into a lane holding `depth` commands: one
    round of requests beyond those running, one at a time when ordered, and no more than
    a second's worth under a rate limit (so a deleted or paused subscription's lane is
    never long behind its state)."""
    if ordered:
        return 1 if depth == 0 else 0
    limit = 2 * concurrency
    if rate_limit is not None and rate_limit > 0:
        limit = min(limit, max(1, math.ceil(rate_limit)))
    return max(0, limit - depth)


def next_feed_cap(cap: int, *, gap_s: float, busy_s: float, floor: int, ceiling: int) -> int:
    """How many backlogged commands may be lent to lanes at once, after a loop turn that
    took `gap_s`: halved when the turn was slow (the process is busy with fresh commands,
    which come first), grown by one otherwise (AIMD). Never below `floor`, so a backlog always
    drains, if slowly."""
    if gap_s > busy_s:
        return max(floor, cap // 2)
    return min(ceiling, cap + 1)


def next_request_limit(limit: int, *, gap_s: float, busy_s: float, floor: int, ceiling: int) -> int:
    """How many requests one process may have running at once, after a loop turn that took
    `gap_s`: a tenth fewer when the turn was slow, one more otherwise (AIMD). Requests the
    loop cannot serve only wait longer in it and cost more each (an aiohttp client loop
    sends ~10,400 requests/s at 16 at once and ~5,500 at 1,024, on the same core), so past
    what the CPU can serve, more at once is slower for everyone."""
    if gap_s > busy_s:
        return max(floor, limit - max(1, limit // 10))
    return min(ceiling, limit + 1)


def lane_share(*, concurrency: int, limit: int, lanes: int) -> int:
    """How many requests one lane may run: its own concurrency, cut to an even share of the
    process's request limit among the `lanes` with work when they would run more together.
    Never below one: a lane's first request never waits on other lanes' (hanging ones
    included), and a tenant's lanes together get no more than their number's share."""
    return min(concurrency, max(1, limit // max(1, lanes)))


def stale(*, queued_at: float, now: float, after_s: float) -> bool:
    """A command read from Kafka that waited `after_s` in a busy lane moves to the backlog:
    its lane is slow, and the read-ahead budget is for lanes that move."""
    return now - queued_at >= after_s


# --- rate limit ---------------------------------------------------------------------------


class RateLimiter:
    """Requests per second for one subscription (GCRA): `reserve` books the next slot.

    `burst` requests may go at once after an idle spell; after that they are spaced
    1/rate apart.
    """

    __slots__ = ("_burst_s", "_interval_s", "_tat_s")

    def __init__(self, rate_per_s: float, *, burst: int = 1) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._interval_s = 1.0 / rate_per_s
        self._burst_s = (burst - 1) * self._interval_s
        self._tat_s = float("-inf")

    def reserve(self, now_s: float) -> float:
        """Book a slot; return how many seconds to wait before using it (0 = now)."""
        start_s = max(now_s, self._tat_s - self._burst_s)
        self._tat_s = max(self._tat_s, start_s) + self._interval_s
        return max(0.0, start_s - now_s)


# --- endpoint health ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """Since when a subscription has seen only failures (None = last attempt succeeded)."""

    failing_since: datetime | None = None

    def after_success(self) -> EndpointHealth:
        return EndpointHealth(None)

    def after_failure(self, at: datetime) -> EndpointHealth:
        if self.failing_since is not None and self.failing_since <= at:
            return self
        return EndpointHealth(at)

    def should_disable(self, now: datetime, *, window_s: float) -> bool:
        """No success for `window_s`: the design disables the subscription."""
        if self.failing_since is None:
            return False
        return now - self.failing_since >= timedelta(seconds=window_s)


_UNITS: Final = ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second"))


def no_success_reason(window_s: float) -> str:
    """Why a subscription with no success for `window_s` was disabled, in the largest whole
    unit (`no successful delivery for 5 days`): the subscription shows it to its owner."""
    for size, unit in _UNITS:
        if window_s >= size and window_s % size == 0:
            count = int(window_s // size)
            return f"no successful delivery for {count} {unit}{'' if count == 1 else 's'}"
    return f"no successful delivery for {window_s:g} seconds"
