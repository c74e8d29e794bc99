"""Per-subscription lanes fed from Kafka and from a durable backlog, scheduled fairly.

A command read from `deliveries` whose lane can take it runs from memory (the fast path). A
command its subscription cannot start soon (lane busy for a second, earlier commands
backlogged, an ordered lane busy, a retry not yet due) is written once into the
subscription's backlog (`deliverer.backlog`: changelog topic plus local store), and its
offset is finished once that write is acknowledged: a partition never waits on one
subscription. Backlogged commands are leased back into their lanes round-robin across the
subscriptions that have due work, a round of requests at a time, within each lane's
concurrency, rate limit and order; a retry is a timer in the backlog, so work due now never
waits behind work due later. An ordered lane holds one command at a time and its retry
stays its backlog's head. A command's offset is finished once its outputs are acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Final

from core.attempts import Observed, Plan, Source, plan_attempt, plan_unsendable
from core.backlog_schedule import BacklogSchedule
from core.errors import InvalidCustomHeader, InvalidSecret
from core.lanes import (
    EndpointHealth,
    PartitionOffsets,
    RateLimiter,
    admit,
    feed_room,
    lane_capacity,
    next_feed_cap,
    stale,
)
from core.outcome import Delivered, Retry, TransportError, classify, decide
from core.records import DeliveryCommand, Subscription
from core.retry import RetrySchedule
from deliverer.backlog import BacklogStore, Entry, Taken, entry_key
from deliverer.disabling import Disabler
from deliverer.kafka_io import Forward, KafkaIO, Polled, Undecodable
from deliverer.lanes import Item, Lane, Slot
from deliverer.metrics import DelivererMetrics
from deliverer.outputs import Outputs
from deliverer.ports import HttpSender, RestoreBacklog
from deliverer.requests import SigningKeys, request_headers
from deliverer.sender import Attempted
from hookline.runtime.clock import Clock
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

STALE_AFTER_S: Final = 1.0
"""A command read from Kafka that waited this long in its lane moves to the backlog."""
SWEEP_INTERVAL_S: Final = 0.25
INACTIVE_CHECK_S: Final = 1.0
FEED_SUBSCRIPTIONS_PER_TICK: Final = 64
BUSY_TURN_S: Final = 0.025
"""A loop turn slower than this means fresh commands keep the process busy: backlogs yield."""
FEED_CAP_FLOOR: Final = 4
MEASURE_INTERVAL_S: Final = 5.0
TOP_BACKLOGS: Final = 5
BACKLOGGED_WHY: Final = ("busy", "slow", "retry", "timer", "held", "handover")
SubscriptionLookup = Callable[[str], Subscription | None]


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        io: KafkaIO,
        sender: HttpSender,
        lookup: SubscriptionLookup,
        keys: SigningKeys,
        codec: RecordCodec,
        disabler: Disabler,
        metrics: DelivererMetrics,
        store: BacklogStore,
        restore: RestoreBacklog,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._io = io
        self._sender = sender
        self._lookup = lookup
        self._keys = keys
        self._codec = codec
        self._disabler = disabler
        self._metrics = metrics
        self._store = store
        self._restore_backlog = restore
        self._clock = clock
        self._schedule = RetrySchedule(delays_s=settings.retry_delays_s)
        self._capacity = lane_capacity(
            max_in_flight=settings.max_in_flight, lane_concurrency=settings.lane_concurrency
        )
        self._lanes: dict[str, Lane] = {}
        self._limiters: dict[str, tuple[float, RateLimiter]] = {}
        self._health: dict[str, EndpointHealth] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._outputs = Outputs(settings, io=io, codec=codec, metrics=metrics)
        self._topics = self._outputs.topics
        self._backlogged = {why: metrics.backlogged.labels(why) for why in BACKLOGGED_WHY}
        # the backlog's schedule: entries per subscription (owned partitions), subscriptions
        # with due work in round-robin order, and one timer per waiting subscription
        self._backlog = BacklogSchedule()
        self._restoring: dict[int, threading.Event] = {}
        self._swept = 0.0
        self._fed_at = self._clock.monotonic()
        self._feed_cap = FEED_CAP_FLOOR
        self._checked = 0.0
        self._measured = 0.0
        self.in_flight = 0
        """Commands read from Kafka whose offsets are not finished yet."""
        self.leased = 0
        """Backlogged commands lent to lanes."""
        self._failure: BaseException | None = None

    # -- admission ---------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        """Why the deliverer must stop: a task's error, or an output Kafka refused."""
        return self._failure or self._outputs.failure

    def submit(self, item: Polled) -> None:
        self.in_flight += 1
        if isinstance(item, Undecodable):
            self._dead_letter_undecodable(item)
            return
        if isinstance(item, Forward):
            offset = item.message.offset()
            assert offset is not None
            finish = functools.partial(self._finish, item.offsets, offset)
            self._outputs.write_then(self._outputs.forwarded(item.message), finish)
            return
        sub_id = item.subscription_id
        lane = self._lane(sub_id)
        work = Item(
            sub_id,
            item.value,
            item.partition,
            item.offset,
            self._clock.monotonic(),
            item.created_ms,
            item.due_ms,
            offsets=item.offsets,
        )
        backlogged = self._backlog.count(sub_id) > 0
        now_ms = _ms(self._clock.now())
        if item.due_ms > now_ms:
            self._to_backlog(work, "timer")
        elif lane.resume_ms > now_ms:
            self._to_backlog(work, "held")
        elif (
            admit(
                depth=lane.depth,
                capacity=self._capacity,
                ordered=lane.ordered,
                backlogged=backlogged,
            )
            == "backlog"
        ):
            self._to_backlog(work, "busy")
        else:
            try:
                work.command = self._codec.decode_delivery_command(item.value)
            except UndecodableRecord as exc:
                error = exc.at(item.topic, item.partition, item.offset)
                self._dead_letter_undecodable(Undecodable(item.message, error, item.offsets))
                return
            lane.queue.append(work)
            self._fill(lane)

    def _lane(self, sub_id: str) -> Lane:
        subscription = self._lookup(sub_id)
        lane = self._lanes.get(sub_id)
        if lane is None:
            lane = self._lanes[sub_id] = Lane(sub_id, False, 1)
        # a subscription no longer active sends nothing: its commands are settled in any
        # order, a round at a time, even when it was ordered
        active = subscription is not None and subscription.status == "active"
        ordered = active and subscription is not None and subscription.ordered
        lane.ordered = ordered
        lane.concurrency = 1 if ordered else self._settings.lane_concurrency
        lane.rate_limit = None if subscription is None else subscription.rate_limit
        return lane

    def _fill(self, lane: Lane) -> None:
        if lane.resume_ms and lane.queue and lane.resume_ms > _ms(self._clock.now()):
            return
        while lane.running < lane.concurrency and lane.queue and not self._stop.is_set():
            item = lane.queue.popleft()
            lane.running += 1
            slot = Slot(functools.partial(self._lane_done, lane))
            task = self._spawn(self._deliver(lane, item, slot))
            task.add_done_callback(slot.release)

    def _lane_done(self, lane: Lane) -> None:
        lane.running -= 1
        self._fill(lane)
        sub_id = lane.subscription_id
        if self._backlog.count(sub_id) > 0:
            self._wake(sub_id)
        elif (
            lane.depth == 0
            and lane.resume_ms <= _ms(self._clock.now())  # a Retry-After hold outlives it
            and self._lanes.get(sub_id) is lane
        ):
            del self._lanes[sub_id]
            self._backlog.discard(sub_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    @property
    def lane_depth(self) -> int:
        return sum(lane.depth for lane in self._lanes.values())

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    @property
    def backlog_depth(self) -> int:
        return self._backlog.depth

    # -- the backlog ---------------------------------------------------------------------------

    def _to_backlog(self, item: Item, why: str) -> None:
        """Write a command read from Kafka into its subscription's backlog; its offset is
        finished once the changelog record is acknowledged."""
        item.key = entry_key(item.seq)
        entry = Entry(
            key=item.key,
            partition=item.partition,
            subscription_id=item.subscription_id,
            seq=item.seq,
            due_ms=item.due_ms,
            created_ms=item.created_ms,
            value=item.value,
        )
        self._store_put(entry, new=True)  # its key is its offset: never seen before
        self._backlogged[why].inc()
        offsets, item.offsets = item.offsets, None
        self._outputs.write_then(
            [self._outputs.put(entry)],
            _nothing if offsets is None else functools.partial(self._finish, offsets, item.seq),
        )

    def _entry(self, item: Item, command: DeliveryCommand) -> Entry:
        """The backlog entry of a command that changed (a retry): encoded anew."""
        assert item.key is not None
        due = command.not_before
        return Entry(
            key=item.key,
            partition=item.partition,
            subscription_id=command.subscription_id,
            seq=item.seq,
            due_ms=0 if due is None else _ms(due),
            created_ms=_ms(command.created_at),
            value=self._codec.encode_delivery_command(command),
        )

    def _store_put(self, entry: Entry, *, new: bool) -> None:
        """Into the local store; `new` when it adds an entry rather than replacing one."""
        if not self._io.owns(entry.partition) or entry.partition in self._restoring:
            return  # not ours (revoked meanwhile): the changelog record is what counts
        self._store.put(entry)
        if new:
            self._backlog.added(entry.subscription_id)
        self._schedule_at(entry.subscription_id, entry.due_ms)

    def _store_delete(self, item: Item) -> None:
        if item.key is None or not self._io.owns(item.partition):
            return
        if item.partition in self._restoring:
            return
        self._store.delete(item.partition, item.key)
        self._backlog.removed(item.subscription_id)

    def _schedule_at(self, sub_id: str, due_ms: int) -> None:
        self._backlog.due_at(sub_id, due_ms, now_ms=_ms(self._clock.now()))

    def _wake(self, sub_id: str) -> None:
        self._backlog.wake(sub_id)

    def feed(self) -> None:
        """Lease due backlog into lanes: subscriptions in turn, a round of requests each."""
        now_s = self._clock.monotonic()
        if now_s - self._swept >= SWEEP_INTERVAL_S:
            self._swept = now_s
            self._sweep_stale(now_s)
        if now_s - self._checked >= INACTIVE_CHECK_S:
            self._checked = now_s
            self._wake_inactive()
        if now_s - self._measured >= MEASURE_INTERVAL_S:
            self._measured = now_s
            self._measure()
        now_ms = _ms(self._clock.now())
        self._backlog.fire(now_ms)
        if self._stop.is_set():
            return
        self._feed_cap = next_feed_cap(
            self._feed_cap,
            gap_s=now_s - self._fed_at,
            busy_s=BUSY_TURN_S,
            floor=FEED_CAP_FLOOR,
            ceiling=self._settings.max_in_flight,
        )
        self._fed_at = now_s
        self._metrics.backlog_feed_cap.set(self._feed_cap)
        budget = self._feed_cap - self.leased
        if budget > 0:
            for sub_id in self._backlog.turns(FEED_SUBSCRIPTIONS_PER_TICK):
                budget -= self._feed_one(sub_id, now_ms, budget)
                if budget <= 0:
                    break
        self._store.flush()

    def _feed_one(self, sub_id: str, now_ms: int, budget: int) -> int:
        if self._backlog.count(sub_id) <= 0:
            return 0
        lane = self._lane(sub_id)
        room = min(
            budget,
            feed_room(
                depth=lane.depth,
                concurrency=lane.concurrency,
                ordered=lane.ordered,
                rate_limit=lane.rate_limit,
            ),
        )
        subscription = self._lookup(sub_id)
        inactive = subscription is None or subscription.status != "active"
        if lane.resume_ms > now_ms and not inactive:
            self._schedule_at(sub_id, lane.resume_ms)  # as the endpoint asked
            return 0
        if room <= 0:
            return 0  # its lane is busy: `_lane_done` wakes it
        taken = self._store.take(
            sub_id, now_ms=now_ms, limit=room, ordered=lane.ordered, ignore_due=inactive
        )
        now_s = self._clock.monotonic()
        for row in taken:
            try:
                command = self._codec.decode_delivery_command(row.value)
            except UndecodableRecord as exc:
                self.leased += 1
                self._dead_letter_entry(sub_id, row, exc)
                continue
            lane.queue.append(
                Item(
                    sub_id,
                    row.value,
                    row.partition,
                    row.seq,
                    now_s,
                    _ms(command.created_at),
                    command=command,
                    key=row.key,
                    leased=True,
                )
            )
            self.leased += 1
        if len(taken) == room and not lane.ordered:
            self._wake(sub_id)  # more may be due: back of the round
        elif not taken or lane.ordered:
            next_due = self._store.next_due(sub_id, ordered=lane.ordered)
            if next_due is not None and not inactive:
                self._schedule_at(sub_id, max(next_due, now_ms + 1))
            elif next_due is None and not lane.ordered:
                # nothing left to lend: the count is the store's (heals any drift after a
                # rebalance re-read an offset the restore had already brought back)
                self._backlog.recount(sub_id, self._store.count(sub_id))
        self._fill(lane)
        return len(taken)

    def _sweep_stale(self, now_s: float) -> None:
        """Commands read from Kafka that waited too long in a slow lane: into the backlog."""
        for lane in list(self._lanes.values()):
            queue = lane.queue
            if (
                lane.ordered
                or not queue
                or not stale(queued_at=queue[0].queued_at, now=now_s, after_s=STALE_AFTER_S)
            ):
                continue
            kept: deque[Item] = deque()
            for item in queue:
                if item.offsets is not None and stale(
                    queued_at=item.queued_at, now=now_s, after_s=STALE_AFTER_S
                ):
                    self._to_backlog(item, "slow")
                else:
                    kept.append(item)
            lane.queue = kept

    def _wake_inactive(self) -> None:
        """A subscription deleted, disabled or paused while backlogged is settled now, not
        when its timers fall due."""
        for sub_id in self._backlog.backlogged():
            if self._backlog.is_waiting_turn(sub_id):
                continue
            subscription = self._lookup(sub_id)
            if subscription is None or subscription.status != "active":
                self._wake(sub_id)

    def _measure(self) -> None:
        metrics, store = self._metrics, self._store
        metrics.backlog_depth.set(self.backlog_depth)
        top = self._backlog.deepest(TOP_BACKLOGS)
        metrics.backlog_top.clear()
        for sub_id, count in top:
            metrics.backlog_top.labels(sub_id).set(count)
        now_ms = _ms(self._clock.now())
        oldest = [store.oldest_created_ms(sub_id) for sub_id in self._backlog.backlogged()]
        known = [ms for ms in oldest if ms is not None]
        metrics.backlog_oldest_age.set((now_ms - min(known)) / 1000 if known else 0)
        for bucket, count in store.timers(now_ms).items():
            metrics.backlog_timers.labels(bucket).set(count)

    # -- rebalances --------------------------------------------------------------------------

    def assigned(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            cancel = threading.Event()
            previous = self._restoring.get(partition)
            if previous is not None:
                previous.set()
            self._restoring[partition] = cancel
            self._spawn(self._restore(partition, cancel))

    async def _restore(self, partition: int, cancel: threading.Event) -> None:
        restored = await asyncio.to_thread(
            self._restore_backlog,
            self._store.path,
            self._topics.backlog,
            partition,
            cancelled=cancel,
        )
        if self._restoring.get(partition) is cancel:
            del self._restoring[partition]
        if restored is None or cancel.is_set() or not self._io.owns(partition):
            if not self._io.owns(partition):
                self._store.drop_partitions([partition])
            return
        for sub_id, count in restored.entries.items():
            self._backlog.added(sub_id, count)
            self._wake(sub_id)
        self._metrics.restore_seconds.observe(restored.seconds)
        if restored.records:
            log.info(
                "deliverer: restored the backlog of partition %d: %d commands from %d records"
                " in %.1f s",
                partition,
                restored.entries.total(),
                restored.records,
                restored.seconds,
            )
        self._io.restored(partition)

    def revoked(self, partitions: Sequence[int]) -> None:
        gone = set(partitions)
        for partition in gone:
            cancel = self._restoring.pop(partition, None)
            if cancel is not None:
                cancel.set()
        self._backlog.forget(self._store.drop_partitions(gone))
        for lane in self._lanes.values():
            if any(item.partition in gone for item in lane.queue):
                kept: deque[Item] = deque()
                for item in lane.queue:
                    if item.partition not in gone:
                        kept.append(item)
                        continue
                    # the new owner re-reads it (from the committed offset or the changelog)
                    if item.offsets is not None:
                        self.in_flight -= 1
                    if item.leased:
                        self.leased -= 1
                lane.queue = kept

    # -- one command -------------------------------------------------------------------------

    async def _deliver(self, lane: Lane, item: Item, slot: Slot) -> None:
        command = item.command
        assert command is not None, "decoded before it enters a lane"
        source = Source(self._topics.deliveries, item.partition, item.seq)
        subscription = self._lookup(command.subscription_id)
        if subscription is None or subscription.status != "active":
            why = "deleted" if subscription is None else subscription.status
            assert why != "active"
            self._keys.forget(command.subscription_id)
            self._conclude(
                item, plan_unsendable(command, why, now=self._clock.now(), source=source)
            )
            return
        if not await self._wait_for_rate(subscription):
            self._hand_back(item)  # stopping: never hold an offset for a rate limit
            return
        attempted = await self._attempt(subscription, command)
        now = self._clock.now()
        classification = classify(attempted.outcome, now=now)
        decision = decide(
            classification,
            attempt=command.attempt + 1,
            schedule=self._schedule,
            rand=random.random(),  # noqa: S311 - jitter, not security
        )
        plan = plan_attempt(
            command, attempted.observed, classification, decision, now=now, source=source
        )
        self._note_health(subscription, delivered=isinstance(classification, Delivered))
        if isinstance(classification, Retry) and classification.retry_after_s:
            self._hold_lane(lane, classification.retry_after_s)
        slot.release()  # the next request of this lane need not wait for Kafka's ack
        self._conclude(item, plan)
        if plan.disable_reason is not None:
            await self._disabler.disable(subscription, plan.disable_reason)

    def _conclude(self, item: Item, plan: Plan) -> None:
        """Produce the plan's records and settle the command's backlog entry: a retry
        replaces it (a new entry for a command read from Kafka), anything final deletes it.
        The command's offset, if it still holds one, is finished once all are acknowledged."""
        records = self._outputs.of_plan(plan)
        if plan.retry is not None:
            new = item.key is None  # read from Kafka: a new entry; leased: it replaces its own
            item.key = item.key or entry_key(item.seq)
            entry = self._entry(item, plan.retry)
            self._store_put(entry, new=new)
            self._backlogged["retry"].inc()
            records.append(self._outputs.put(entry))
        elif item.key is not None:
            self._store_delete(item)
            records.append(self._outputs.tombstone(item.partition, item.key))
        if item.leased:
            item.leased = False
            self.leased -= 1
        offsets = item.offsets
        self._outputs.write_then(
            records,
            _nothing if offsets is None else functools.partial(self._finish, offsets, item.seq),
        )

    def _hold_lane(self, lane: Lane, retry_after_s: float) -> None:
        """The endpoint asked to be left alone (429/503 with Retry-After): its lane starts
        nothing until then, and what it holds waits in the backlog, not in memory."""
        lane.resume_ms = max(lane.resume_ms, _ms(self._clock.now()) + int(retry_after_s * 1000))
        while lane.queue:
            self._hand_back(lane.queue.popleft(), "held")
        self._schedule_at(lane.subscription_id, lane.resume_ms)

    def _hand_back(self, item: Item, why: str = "handover") -> None:
        """A command not attempted (stopping, or its endpoint asked to wait): into the
        backlog when it came from Kafka, given back to the backlog when it was leased."""
        if item.offsets is not None:
            self._to_backlog(item, why)
        elif item.leased:
            item.leased = False
            self.leased -= 1
            if item.key is not None and self._io.owns(item.partition):
                self._store.unlease(item.partition, item.key)

    async def _attempt(self, subscription: Subscription, command: DeliveryCommand) -> Attempted:
        now = self._clock.now()
        try:
            secrets = self._keys.valid(subscription, now)
            headers = request_headers(subscription, command, secrets=secrets)
        except (InvalidSecret, InvalidCustomHeader) as exc:
            observed = Observed(at=now, duration_ms=0, status_code=None, response_body=None)
            return Attempted(
                TransportError("protocol", f"cannot build the request: {exc}"), observed
            )
        attempted = await self._sender.post(
            subscription.url,
            headers=headers,
            body=command.payload,
            deadline_s=self._settings.delivery_timeout_s,
        )
        self._metrics.latency.observe(attempted.observed.duration_ms / 1000)
        return attempted

    def _note_health(self, subscription: Subscription, *, delivered: bool) -> None:
        health = self._health.get(subscription.id, EndpointHealth())
        now = self._clock.now()
        health = health.after_success() if delivered else health.after_failure(now)
        self._health[subscription.id] = health
        if health.should_disable(now, window_s=self._settings.disable_after_s):
            del self._health[subscription.id]
            reason = f"no successful delivery for {self._settings.disable_after_s:g} s"
            self._spawn(self._disabler.disable(subscription, reason))

    async def _wait_for_rate(self, subscription: Subscription) -> bool:
        rate = subscription.rate_limit
        if rate is None or rate <= 0:
            return not self._stop.is_set()
        known = self._limiters.get(subscription.id)
        if known is None or known[0] != rate:
            known = self._limiters[subscription.id] = (rate, RateLimiter(rate))
        return await self._sleep_unless_stopping(known[1].reserve(self._clock.monotonic()))

    async def _sleep_unless_stopping(self, wait_s: float) -> bool:
        """Sleep `wait_s`; False when the deliverer started stopping meanwhile."""
        if self._stop.is_set():
            return False
        if wait_s <= 0:
            return True
        try:
            await asyncio.wait_for(self._stop.wait(), wait_s)
        except TimeoutError:
            return True
        return False

    def _dead_letter_undecodable(self, item: Undecodable) -> None:
        assert item.error.offset is not None
        finish = functools.partial(self._finish, item.offsets, item.error.offset)
        self._outputs.write_then(self._outputs.undecodable_record(item.message, item.error), finish)

    def _dead_letter_entry(self, sub_id: str, row: Taken, error: UndecodableRecord) -> None:
        """A backlog entry that cannot be decoded: dead-letter its bytes, drop the entry."""
        self.leased -= 1
        self._store.delete(row.partition, row.key)
        self._backlog.removed(sub_id)
        self._outputs.write_then(self._outputs.undecodable_entry(sub_id, row, error), _nothing)

    def _finish(self, offsets: PartitionOffsets, offset: int) -> None:
        offsets.finish(offset)
        self.in_flight -= 1

    # -- stopping ------------------------------------------------------------------------------

    async def drain(self, *, timeout_s: float) -> None:
        """Stop starting work; hand queued commands read from Kafka to the backlog; wait for
        running attempts (each ends by its deadline) and their outputs."""
        self._stop.set()
        for lane in self._lanes.values():
            while lane.queue:
                self._hand_back(lane.queue.popleft())
        deadline = time.monotonic() + timeout_s  # real waiting, bounded in real time
        while (
            (self._tasks or self._outputs.unacknowledged)
            and time.monotonic() < deadline
            and self.failure is None
        ):
            self._io.tick()
            await asyncio.sleep(0.005)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _nothing() -> None:
    pass


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
