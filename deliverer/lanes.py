"""Per-subscription lanes: the commands each holds in memory (`Item`), its limits, its
concurrency slots, and `Lanes`, which starts their attempts and drops a lane once it is empty.

A lane runs up to its concurrency (one when ordered) and starts nothing while its endpoint
asked to wait (Retry-After). A lane that frees a slot gives its subscription a turn at the
backlog; an empty lane with nothing backlogged is forgotten, so memory follows the
subscriptions that have work, not all of them.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from core.backlog_schedule import BacklogSchedule
from core.lanes import PartitionOffsets, lane_share, next_request_limit, stale
from core.records import DeliveryCommand, Subscription, epoch_ms
from deliverer.sender import MAX_CONNECTIONS
from hookline.runtime.clock import Clock
from hookline.runtime.settings import Settings

STALE_AFTER_S: Final = 1.0
"""A command read from Kafka that waited this long in a lane that finished no request for as
long moves to the backlog."""

REQUEST_LIMIT_FLOOR: Final = 384
"""The request limit never falls below this (nor any lane's share below one request): up to
24 busy subscriptions keep their whole concurrency of 16, and 100 get about 4 each, which is
where the bench's 1,000 events/s phase ran best (docs/benchmarks.md); lower floors sent more
commands the slow way, through the backlog."""

SubscriptionLookup: TypeAlias = Callable[[str], Subscription | None]
Spawn: TypeAlias = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]
"""Start a task whose failure stops the deliverer."""


@dataclass(slots=True, eq=False)
class Item:
    """A command in a lane. `offsets` is set while its Kafka offset is unfinished (read from
    `deliveries`, not yet in the backlog); `key` once it is in the backlog's changelog;
    `leased` while the backlog store lent it to the lane. `value` is the command as encoded
    (as read), `command` the decoded one once a lane needs it."""

    subscription_id: str
    value: bytes
    partition: int
    seq: int
    queued_at: float
    created_ms: int
    due_ms: int = 0
    command: DeliveryCommand | None = None
    offsets: PartitionOffsets | None = None
    key: str | None = None
    leased: bool = False


@dataclass(slots=True, eq=False)
class Lane:
    subscription_id: str
    ordered: bool
    concurrency: int
    rate_limit: float | None = None
    queue: deque[Item] = field(default_factory=deque)
    running: int = 0
    resume_ms: int = 0
    """The endpoint asked (Retry-After) that nothing is sent before this wall-clock time."""
    moved_at: float = 0.0
    """When (monotonic) the lane was made or last finished a request: a lane whose requests
    finish is not slow, however long its commands wait for the process's request limit."""

    @property
    def depth(self) -> int:
        return len(self.queue) + self.running


class Slot:
    """A lane's concurrency slot, released once: after the HTTP attempt, or when the task ends."""

    __slots__ = ("_on_release",)

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release: Callable[[], None] | None = on_release

    def release(self, _task: object = None) -> None:
        if self._on_release is not None:
            on_release, self._on_release = self._on_release, None
            on_release()


Run: TypeAlias = Callable[[Lane, Item, Slot], Coroutine[Any, Any, None]]
"""One command's attempt in its lane; it releases the slot once the lane may start the next."""


class InFlight:
    """Commands read from Kafka whose offsets are not finished yet: what `max_in_flight`
    bounds. A command's offset is finished once its outputs (or its backlog record) are
    acknowledged."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def read(self) -> None:
        self.count += 1

    def finisher(self, offsets: PartitionOffsets | None, offset: int) -> Callable[[], None]:
        """What runs once a command's outputs are acknowledged: finish its offset, if it
        still holds one (a command taken from the backlog does not)."""
        if offsets is None:
            return _nothing
        return functools.partial(self._finish, offsets, offset)

    def forget(self) -> None:
        """A command of a revoked partition, dropped: the new owner re-reads it."""
        self.count -= 1

    def _finish(self, offsets: PartitionOffsets, offset: int) -> None:
        offsets.finish(offset)
        self.count -= 1


class Lanes:
    """The lanes of the subscriptions with commands in memory, and the attempts they start."""

    def __init__(
        self,
        settings: Settings,
        *,
        lookup: SubscriptionLookup,
        schedule: BacklogSchedule,
        clock: Clock,
        stop: asyncio.Event,
        spawn: Spawn,
        run: Run,
    ) -> None:
        self._lane_concurrency = settings.lane_concurrency
        self._lookup = lookup
        self._schedule = schedule
        self._clock = clock
        self._stop = stop
        self._spawn = spawn
        self._run = run
        self._lanes: dict[str, Lane] = {}
        self.request_limit = MAX_CONNECTIONS
        """Requests the process may run at once, shared evenly among the lanes with work
        (`core.lanes.lane_share`); `pace` moves it after each loop turn."""

    def __len__(self) -> int:
        return len(self._lanes)

    @property
    def depth(self) -> int:
        return sum(lane.depth for lane in self._lanes.values())

    @property
    def oldest_queued_ms(self) -> int | None:
        """Creation time of the oldest command waiting in a lane (each queue's head is its
        oldest arrival; one look per lane, so bounded by the number of lanes)."""
        heads = [lane.queue[0].created_ms for lane in self._lanes.values() if lane.queue]
        return min(heads) if heads else None

    def lane(self, sub_id: str) -> Lane:
        """The subscription's lane, its limits as the subscription now says."""
        subscription = self._lookup(sub_id)
        lane = self._lanes.get(sub_id)
        if lane is None:
            lane = self._lanes[sub_id] = Lane(sub_id, False, 1, moved_at=self._clock.monotonic())
        # a subscription no longer active sends nothing: its commands are settled in any
        # order, a round at a time, even when it was ordered
        active = subscription is not None and subscription.status == "active"
        ordered = active and subscription is not None and subscription.ordered
        lane.ordered = ordered
        lane.concurrency = 1 if ordered else self._lane_concurrency
        lane.rate_limit = None if subscription is None else subscription.rate_limit
        return lane

    def pace(self, *, gap_s: float, busy_s: float) -> int:
        """Move the request limit after a loop turn that took `gap_s`, between
        `REQUEST_LIMIT_FLOOR` and the HTTP client's connections
        (`core.lanes.next_request_limit`); the new limit."""
        self.request_limit = next_request_limit(
            self.request_limit,
            gap_s=gap_s,
            busy_s=busy_s,
            floor=REQUEST_LIMIT_FLOOR,
            ceiling=MAX_CONNECTIONS,
        )
        return self.request_limit

    def fill(self, lane: Lane) -> None:
        """Start queued commands up to the lane's share of the process's requests (none
        while stopping or held)."""
        if lane.resume_ms and lane.queue and lane.resume_ms > epoch_ms(self._clock.now()):
            return
        allowed = lane_share(
            concurrency=lane.concurrency, limit=self.request_limit, lanes=len(self._lanes)
        )
        while lane.running < allowed and lane.queue and not self._stop.is_set():
            item = lane.queue.popleft()
            lane.running += 1
            slot = Slot(functools.partial(self._done, lane))
            task = self._spawn(self._run(lane, item, slot))
            task.add_done_callback(slot.release)

    def _done(self, lane: Lane) -> None:
        lane.running -= 1
        lane.moved_at = self._clock.monotonic()
        self.fill(lane)
        sub_id = lane.subscription_id
        if self._schedule.count(sub_id) > 0:
            self._schedule.wake(sub_id)
        elif (
            lane.depth == 0
            and lane.resume_ms <= epoch_ms(self._clock.now())  # a Retry-After hold outlives it
            and self._lanes.get(sub_id) is lane
        ):
            del self._lanes[sub_id]
            self._schedule.discard(sub_id)

    def take_stale(self, now_s: float) -> list[Item]:
        """Take out the commands read from Kafka that waited too long in a slow lane (for
        the backlog). An ordered lane keeps its order: it holds one command at a time. A
        lane that finished a request lately is not slow: its commands wait for the
        process's request limit (an overloaded process), and the backlog's writes would
        only add to the load."""
        taken: list[Item] = []
        for lane in self._lanes.values():
            queue = lane.queue
            if (
                lane.ordered
                or not queue
                or not stale(queued_at=queue[0].queued_at, now=now_s, after_s=STALE_AFTER_S)
                or not stale(queued_at=lane.moved_at, now=now_s, after_s=STALE_AFTER_S)
            ):
                continue
            kept: deque[Item] = deque()
            for item in queue:
                if item.offsets is not None and stale(
                    queued_at=item.queued_at, now=now_s, after_s=STALE_AFTER_S
                ):
                    taken.append(item)
                else:
                    kept.append(item)
            lane.queue = kept
        return taken

    def take_revoked(self, partitions: set[int]) -> list[Item]:
        """Take out the queued commands of partitions this process gave up."""
        taken: list[Item] = []
        for lane in self._lanes.values():
            if any(item.partition in partitions for item in lane.queue):
                kept: deque[Item] = deque()
                for item in lane.queue:
                    (taken if item.partition in partitions else kept).append(item)
                lane.queue = kept
        return taken

    def take_queued(self) -> list[Item]:
        """Take out every queued command (stopping: they are handed back to the backlog)."""
        taken: list[Item] = []
        for lane in self._lanes.values():
            taken.extend(lane.queue)
            lane.queue.clear()
        return taken


def _nothing() -> None:
    pass
