"""One batch of the router: what it will produce, and the offsets it was derived from."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition


@dataclass(slots=True)
class Batch:
    """The outputs of one batch and the offsets they were derived from."""

    outputs: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    next: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    commands: int = 0
    dead: Counter[str] = field(default_factory=Counter)

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        self.first.setdefault((topic, partition), offset)
        self.next[(topic, partition)] = offset + 1
        self.records += 1

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.next.items()]

    def starts(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.first.items()]


@dataclass(slots=True)
class Linger:
    """How long the next batch gathers after its first event, from the recent arrival rate.

    A transaction costs the router and the broker about the same CPU whatever it holds, and
    without a linger the router commits one per transaction cycle (a few ms: the commit
    markers must be written before the next transaction may start) at any rate above a few
    hundred events/s. So a batch starts no sooner than a spacing after the previous one. The
    spacing grows with the rate, reaching `min_interval_s` at `spaced_per_s` (then a bound on
    transactions per second, whatever the rate): at a low rate the CPU is there to spare and
    an event waits for next to nothing, and the transactions a second, `min(rate,
    spaced_per_s / (min_interval_s * rate))`, peak at `sqrt(spaced_per_s / min_interval_s)`
    (112/s at 500/s and 40 ms). Above `quiet_per_s` the linger grows linearly, reaching
    `max_s` at `busy_per_s`, since the deliverer needs the CPU the transactions take. The
    rate is what the router read in the last `window_s`.
    """

    max_s: float
    min_interval_s: float = 0.0
    spaced_per_s: float = 500.0
    quiet_per_s: float = 600.0
    busy_per_s: float = 1200.0
    window_s: float = 1.0
    _read: deque[tuple[float, int]] = field(default_factory=deque)
    _in_window: int = 0
    _last_at: float = float("-inf")

    def read(self, now: float, records: int) -> None:
        """`records` were read at `now` (monotonic seconds)."""
        self._read.append((now, records))
        self._in_window += records
        self._last_at = now

    def next_s(self, now: float) -> float:
        while self._read and self._read[0][0] <= now - self.window_s:
            self._in_window -= self._read.popleft()[1]
        rate = self._in_window / self.window_s
        interval_s = self.min_interval_s * min(1.0, rate / self.spaced_per_s)
        spacing_s = max(0.0, self._last_at + interval_s - now)
        if rate <= self.quiet_per_s or self.max_s <= 0:
            return min(spacing_s, self.max_s)
        share = (rate - self.quiet_per_s) / (self.busy_per_s - self.quiet_per_s)
        return max(spacing_s, self.max_s * min(1.0, share))
