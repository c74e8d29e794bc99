"""Per-subscription lanes: bounded, concurrency-capped, rate-limited; one task per command.

A slow endpoint fills only its own lane: a full unordered lane spills to the shortest retry
tier, a full ordered lane pauses only the partition feeding it. An ordered lane sends one
command at a time and retries it in place (recording each attempt), so it blocks itself only.
A command's offset is finished once its outputs are acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from confluent_kafka import KafkaError
from prometheus_client import Counter

from core.attempts import (
    Observed,
    Plan,
    Source,
    plan_attempt,
    plan_spill,
    plan_unsendable,
)
from core.errors import InvalidCustomHeader, InvalidSecret
from core.lanes import (
    EndpointHealth,
    PartitionOffsets,
    RateLimiter,
    admit,
    lane_capacity,
    lane_drained,
)
from core.outcome import Delivered, TransportError, classify, decide
from core.records import DeadLetter, DeliveryCommand, Subscription, utc_ms
from core.retry import TIERS, RetrySchedule
from deliverer.disabling import Disabler
from deliverer.errors import OutputLost
from deliverer.kafka_io import TP, KafkaIO, Polled, Undecodable, Work
from deliverer.metrics import DelivererMetrics
from deliverer.requests import SigningKeys, request_headers
from deliverer.sender import Attempted, Sender
from hookline.settings import Settings
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

SPILL_DELAY_S: Final = 1.0
SubscriptionLookup = Callable[[str], Subscription | None]


@dataclass(slots=True, eq=False)
class Lane:
    subscription_id: str
    ordered: bool
    concurrency: int
    queue: deque[Work] = field(default_factory=deque)
    running: int = 0
    paused: set[TP] = field(default_factory=set)

    @property
    def depth(self) -> int:
        return len(self.queue) + self.running


@dataclass(frozen=True, slots=True)
class _Topics:
    """Output topic names, resolved once."""

    attempts: str
    dead_letters: str
    retry: dict[str, str]

    @classmethod
    def of(cls, settings: Settings) -> _Topics:
        return cls(
            attempts=settings.topic("attempts"),
            dead_letters=settings.topic("dead-letters"),
            retry={tier: settings.topic(f"retry.{tier}") for tier in TIERS},
        )


class _Slot:
    """A lane's concurrency slot, released once: after the HTTP attempt, or when the task ends."""

    __slots__ = ("_on_release",)

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release: Callable[[], None] | None = on_release

    def release(self, _task: object = None) -> None:
        if self._on_release is not None:
            on_release, self._on_release = self._on_release, None
            on_release()


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        io: KafkaIO,
        sender: Sender,
        lookup: SubscriptionLookup,
        keys: SigningKeys,
        codec: RecordCodec,
        disabler: Disabler,
        metrics: DelivererMetrics,
    ) -> None:
        self._settings = settings
        self._io = io
        self._sender = sender
        self._lookup = lookup
        self._keys = keys
        self._codec = codec
        self._disabler = disabler
        self._metrics = metrics
        self._schedule = RetrySchedule(delays_s=settings.retry_delays_s)
        self._capacity = lane_capacity(
            max_in_flight=settings.max_in_flight, lane_concurrency=settings.lane_concurrency
        )
        self._lanes: dict[str, Lane] = {}
        self._limiters: dict[str, tuple[float, RateLimiter]] = {}
        self._health: dict[str, EndpointHealth] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._topics = _Topics.of(settings)
        self._attempt_counters: dict[str, Counter] = {}
        self.in_flight = 0
        self.unacknowledged = 0
        """Plans produced whose records Kafka has not all acknowledged yet."""
        self.failure: BaseException | None = None

    # -- admission ---------------------------------------------------------------------------

    def submit(self, item: Polled) -> None:
        self.in_flight += 1
        if isinstance(item, Undecodable):
            self._spawn(self._dead_letter_undecodable(item))
            return
        sub_id = item.command.subscription_id
        subscription = self._lookup(sub_id)
        ordered = subscription is not None and subscription.ordered
        lane = self._lanes.get(sub_id)
        if lane is None:
            lane = self._lanes[sub_id] = Lane(sub_id, ordered, 1)
        lane.ordered = ordered
        lane.concurrency = 1 if ordered else self._settings.lane_concurrency
        match admit(depth=lane.depth, capacity=self._capacity, ordered=ordered):
            case "spill":
                self._spawn(self._spill(item, not_before=_now() + timedelta(seconds=SPILL_DELAY_S)))
                return
            case "queue_and_pause":
                tp = (item.topic, item.partition)
                lane.paused.add(tp)
                self._io.pause(tp, f"lane:{sub_id}")
            case "queue":
                pass
        lane.queue.append(item)
        self._fill(lane)

    def _fill(self, lane: Lane) -> None:
        while lane.running < lane.concurrency and lane.queue and not self._stop.is_set():
            work = lane.queue.popleft()
            lane.running += 1
            slot = _Slot(functools.partial(self._lane_done, lane))
            task = self._spawn(self._deliver(lane, work, slot))
            task.add_done_callback(slot.release)

    def _lane_done(self, lane: Lane) -> None:
        lane.running -= 1
        if lane.paused and lane_drained(depth=lane.depth, capacity=self._capacity):
            for tp in lane.paused:
                self._io.unpause(tp, f"lane:{lane.subscription_id}")
            lane.paused.clear()
        self._fill(lane)
        if lane.depth == 0 and not lane.paused and self._lanes.get(lane.subscription_id) is lane:
            del self._lanes[lane.subscription_id]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    @property
    def lane_depth(self) -> int:
        return sum(lane.depth for lane in self._lanes.values())

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    # -- one command -------------------------------------------------------------------------

    async def _deliver(self, lane: Lane, work: Work, slot: _Slot) -> None:
        command = work.command
        source = Source(work.topic, work.partition, work.offset)
        while True:
            subscription = self._lookup(command.subscription_id)
            if subscription is None or subscription.status != "active":
                why = "deleted" if subscription is None else subscription.status
                assert why != "active"
                await self._write(plan_unsendable(command, why, now=_now(), source=source))
                break
            if not await self._wait_for_rate(subscription):
                if not lane.ordered:  # stopping: hand it over rather than hold the offset
                    await self._spill(work, not_before=None)
                return
            attempted = await self._attempt(subscription, command)
            now = _now()
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
            if lane.ordered and plan.retry is not None and plan.retry.not_before is not None:
                # strict order: retry in place, blocking this lane only
                await self._write(Plan(plan.attempt))
                wait_s = (plan.retry.not_before - _now()).total_seconds()
                if not await self._sleep_unless_stopping(wait_s):
                    return  # unfinished: the next owner re-reads it from the committed offset
                command = plan.retry
                continue
            slot.release()  # the next request of this lane need not wait for Kafka's ack
            if plan.disable_reason is None:  # the common case: finished once acknowledged
                self._write_then(plan, functools.partial(self._finish, work.offsets, work.offset))
                return
            await self._write(plan)
            await self._disabler.disable(subscription, plan.disable_reason)
            break
        self._finish(work.offsets, work.offset)

    async def _attempt(self, subscription: Subscription, command: DeliveryCommand) -> Attempted:
        now = _now()
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
        now = _now()
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
        return await self._sleep_unless_stopping(known[1].reserve(time.monotonic()))

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

    # -- outputs -----------------------------------------------------------------------------

    def _records(self, plan: Plan) -> list[tuple[str, str | None, bytes]]:
        """The plan's records, encoded: (topic, key, value); counts them in the metrics."""
        records: list[tuple[str, str | None, bytes]] = []
        codec, topics = self._codec, self._topics
        if plan.attempt is not None:
            value = codec.encode_delivery_attempt(plan.attempt)
            records.append((topics.attempts, plan.attempt.delivery_id, value))
            self._attempts_counter(plan.attempt.outcome).inc()
        if plan.retry is not None:
            assert plan.tier is not None
            value = codec.encode_delivery_command(plan.retry)
            records.append((topics.retry[plan.tier], plan.retry.subscription_id, value))
        if plan.dead_letter is not None:
            value = codec.encode_dead_letter(plan.dead_letter)
            records.append((topics.dead_letters, plan.dead_letter.subscription_id, value))
            self._metrics.dead_letters.labels(plan.dead_letter.reason).inc()
        return records

    def _write_then(self, plan: Plan, then: Callable[[], None]) -> None:
        """Produce the plan's records; `then()` once every one is acknowledged. A record
        Kafka refuses for good stops the deliverer (its offset is never finished)."""
        records = self._records(plan)
        pending = len(records)
        self.unacknowledged += 1

        def acked(error: KafkaError | None) -> None:
            nonlocal pending
            if error is not None:
                if self.failure is None:
                    self.failure = OutputLost(records[0][0], error.str())
                return
            pending -= 1
            if pending == 0:
                self.unacknowledged -= 1
                then()

        for topic, key, value in records:
            self._io.produce(topic, key, value, acked)

    async def _write(self, plan: Plan) -> None:
        sends = [self._io.send(topic, key, value) for topic, key, value in self._records(plan)]
        if len(sends) == 1:
            await sends[0]
        else:
            await asyncio.gather(*sends)

    def _attempts_counter(self, outcome: str) -> Counter:
        child = self._attempt_counters.get(outcome)
        if child is None:
            child = self._attempt_counters[outcome] = self._metrics.attempts.labels(outcome)
        return child

    async def _spill(self, work: Work, *, not_before: datetime | None) -> None:
        await self._write(plan_spill(work.command, not_before=not_before))
        self._metrics.spilled.inc()
        self._finish(work.offsets, work.offset)

    async def _dead_letter_undecodable(self, item: Undecodable) -> None:
        message, error = item.message, item.error
        assert error.topic is not None
        assert error.partition is not None
        assert error.offset is not None
        letter = DeadLetter(
            id=str(uuid.uuid4()),
            reason="undecodable",
            at=utc_ms(_now()),
            subscription_id=None,
            command=None,
            source_topic=error.topic,
            source_partition=error.partition,
            source_offset=error.offset,
            raw_value=message.value(),
            error=str(error),
        )
        log.error("deliverer: %s", error)
        key = message.key()
        await self._io.send(
            self._settings.topic("dead-letters"),
            None if key is None else key.decode(errors="replace"),
            self._codec.encode_dead_letter(letter),
        )
        self._metrics.dead_letters.labels("undecodable").inc()
        self._finish(item.offsets, error.offset)

    def _finish(self, offsets: PartitionOffsets, offset: int) -> None:
        offsets.finish(offset)
        self.in_flight -= 1

    # -- stopping ------------------------------------------------------------------------------

    async def drain(self, *, timeout_s: float) -> None:
        """Stop starting work; hand queued unordered commands to the shortest tier; wait for
        running attempts (each ends by its deadline) and their outputs."""
        self._stop.set()
        for lane in self._lanes.values():
            while lane.queue:
                work = lane.queue.popleft()
                if lane.ordered:
                    continue  # unfinished: order is kept by re-reading from the committed offset
                self._spawn(self._spill(work, not_before=None))
        deadline = time.monotonic() + timeout_s
        while (
            (self._tasks or self.unacknowledged)
            and time.monotonic() < deadline
            and self.failure is None
        ):
            self._io.tick()
            await asyncio.sleep(0.005)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _now() -> datetime:
    return datetime.now(UTC)
