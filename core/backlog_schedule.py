"""Who is next to be fed from the backlog: round-robin turns and FIFO timers.

Pure: the deliverer's shell tells it how many entries each subscription has in its backlog,
when a subscription's next entry falls due, and asks it for the subscriptions whose turn it
is. Memory is per subscription, never per entry: one timer per waiting subscription, at its
earliest due time.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import islice


class BacklogSchedule:
    """Entries per subscription, the subscriptions with due work in turn order, and one
    timer per subscription that waits."""

    __slots__ = ("_counts", "_next_due", "_ready", "_timers")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._ready: dict[str, None] = {}  # insertion order is the turn order
        self._timers: list[tuple[int, str]] = []
        self._next_due: dict[str, int] = {}

    # -- counts --------------------------------------------------------------------------------

    def count(self, sub_id: str) -> int:
        return max(0, self._counts.get(sub_id, 0))

    def added(self, sub_id: str, n: int = 1) -> None:
        self._counts[sub_id] += n

    def removed(self, sub_id: str, n: int = 1) -> None:
        self._counts[sub_id] -= n

    def recount(self, sub_id: str, n: int) -> None:
        """The store's own count, which wins over the running one."""
        self._counts[sub_id] = n

    def forget(self, counts: Mapping[str, int]) -> None:
        """Entries that left with their partitions."""
        self._counts.subtract(counts)
        for sub_id in counts:
            if self._counts[sub_id] <= 0:
                del self._counts[sub_id]

    def discard(self, sub_id: str) -> None:
        """Drop an emptied subscription's bookkeeping."""
        if self._counts.get(sub_id, 0) <= 0:
            self._counts.pop(sub_id, None)

    @property
    def depth(self) -> int:
        return sum(n for n in self._counts.values() if n > 0)

    def deepest(self, k: int) -> list[tuple[str, int]]:
        return [(sub_id, n) for sub_id, n in self._counts.most_common(k) if n > 0]

    def backlogged(self) -> list[str]:
        return [sub_id for sub_id, n in self._counts.items() if n > 0]

    # -- turns and timers ----------------------------------------------------------------------

    def wake(self, sub_id: str) -> None:
        """Give the subscription a turn (keeping its place when it already has one)."""
        self._ready[sub_id] = None

    def is_waiting_turn(self, sub_id: str) -> bool:
        return sub_id in self._ready

    def due_at(self, sub_id: str, due_ms: int, *, now_ms: int) -> None:
        """The subscription has an entry due at `due_ms`: a turn now, or a timer then (only
        the earliest timer of a subscription counts)."""
        if due_ms <= now_ms:
            self.wake(sub_id)
            return
        known = self._next_due.get(sub_id)
        if known is None or due_ms < known:
            self._next_due[sub_id] = due_ms
            heapq.heappush(self._timers, (due_ms, sub_id))

    def fire(self, now_ms: int) -> None:
        """Timers that fell due give their subscriptions a turn."""
        while self._timers and self._timers[0][0] <= now_ms:
            due_ms, sub_id = heapq.heappop(self._timers)
            if self._next_due.get(sub_id) == due_ms:
                del self._next_due[sub_id]
                self.wake(sub_id)

    def turns(self, at_most: int) -> Iterable[str]:
        """The next subscriptions in turn, each taken out of the line: the caller wakes a
        subscription again to put it at the back."""
        for sub_id in list(islice(self._ready, at_most)):
            del self._ready[sub_id]
            yield sub_id
