"""The router process: `hookline.events` in, one DeliveryCommand per matching subscription out.

Consume-transform-produce: a batch's commands, its dead letters and the consumed offsets
commit in one Kafka transaction, so after any crash a `read_committed` reader sees every
command exactly once. A transaction is open only between two `consume` calls, so a
rebalance (whose callbacks run inside `consume`) never meets one. An aborted transaction
rewinds the consumer to the batch's first offsets and the batch is read again.

librdkafka's `send_offsets_to_transaction` can block for good, past its timeout, once the
group coordinator it cached went away (a broker restart; librdkafka issues #5456, #5511).
So the transactional calls of a batch run on a watchdog thread (`router.watchdog`). When
one is not back by its deadline, or the consumer reports a fatal error, the router leaves
both clients behind and builds new ones in-process: the new producer, under the same
transactional id, fences the old one and aborts its open transaction, and the new consumer
resumes from the committed offsets, so the batch is read again. More than MAX_REBUILDS
rebuilds within REBUILD_WINDOW_S stop the process (something other than a recovering broker
is wrong).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from core.matching import SubscriptionIndex
from core.records import DomainEvent, Subscription, trace_of, with_trace
from core.undecodable import Source, undecodable_letter
from hookline.runtime.clock import Clock
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.errors import ProduceTimeout, TopicError
from hookline.runtime.kafka import retry_transient
from hookline.runtime.producing import produce_within
from hookline.runtime.settings import Settings
from hookline.runtime.tracing import child_span, context_of, tracer
from router.batch import Batch, Linger
from router.bootstrap import bootstrap
from router.errors import (
    ClientsBroken,
    ClientsKeepBreaking,
    ConsumerFailed,
    ProducerWedged,
    RouterFenced,
    SubscriptionsUnavailable,
    TransactionsFailing,
)
from router.metrics import RouterMetrics
from router.ports import EventConsumer, Ports, Subscriptions, TransactionalProducer
from router.routing import commands_for
from router.watchdog import abandon, with_deadline
from schemas.errors import UndecodableRecord

log = logging.getLogger(__name__)

DEFAULT_BATCH_MAX_EVENTS: Final = 1000
DEFAULT_BATCH_LINGER_S: Final = 0.05
"""The longest a batch gathers events after its first one (unless it fills first), reached
when the rate is high (`router.batch.Linger`)."""
DEFAULT_BATCH_INTERVAL_S: Final = 0.04
"""Under load a batch starts at least this long after the previous one: at most 25
transactions a second whatever the rate; at lower rates the spacing is shorter, in
proportion to the rate (`router.batch.Linger`). Each
transaction costs the broker ~2.5 ms of CPU (and the router some), which on a small machine
the deliverer needs; a longer spacing buys fewer transactions with latency
(docs/benchmarks.md)."""
IDLE_WAIT_S: Final = 0.1
"""How long one wait for the next event lasts (then the loop checks whether to stop)."""
TRANSACTION_TIMEOUT_S: Final = 30.0
ABORT_PATIENCE_S: Final = 120.0
WEDGED_AFTER_S: Final = TRANSACTION_TIMEOUT_S + 10.0
"""A transactional call not back by then is stuck in librdkafka, not merely slow."""
TABLE_READY_TIMEOUT_S: Final = 120.0
BARRIER_TIMEOUT_S: Final = 10.0
LAG_EVERY_S: Final = 1.0
MAX_FATAL_IN_A_ROW: Final = 3
MAX_REBUILDS: Final = 5
REBUILD_WINDOW_S: Final = 600.0
_FENCED_CODES: Final = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


class Router:
    """The router service (`run(stopping)` blocks until `stopping` is set; `ready` once the
    subscriptions table caught up and the consumer joined its group). `run` routes over
    what `router.bootstrap` builds; `route` over the ports it is given (the unit tests).

    A `client_id` given names this instance for good: it is the suffix of the transactional
    id, so a restart under the same name fences its predecessor and aborts its open
    transaction. Two live routers must never share one. Without it, the name is random.
    Group membership is dynamic either way: a router that stops leaves the group, so its
    partitions move at once; one that crashed holds them for the session timeout.
    """

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        client_id: str | None = None,
        batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS,
        batch_linger_s: float = DEFAULT_BATCH_LINGER_S,
        batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._client_id = client_id or f"router-{uuid.uuid4().hex[:12]}"
        self.transactional_id = f"{settings.topic_prefix}.router.{self._client_id}"
        self._batch_max_events = batch_max_events
        self._batch_linger_s = batch_linger_s
        self._batch_interval_s = batch_interval_s
        self._metrics = RouterMetrics(registry)
        self._lag = ConsumerLag.of(registry)
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        with bootstrap(
            self._settings,
            client_id=self._client_id,
            transactional_id=self.transactional_id,
            lag=self._lag,
        ) as ports:
            self.route(ports, stopping)

    def route(self, ports: Ports, stopping: threading.Event) -> None:
        """Route until `stopping` is set, building new clients when they broke (bounded)."""
        rebuilds: list[float] = []
        try:
            if not _wait_ready(ports.subscriptions, ports.clock, stopping):
                return
            while not stopping.is_set():
                loop = _RoutingLoop(
                    self._settings,
                    ports,
                    self._metrics,
                    transactional_id=self.transactional_id,
                    batch_max_events=self._batch_max_events,
                    batch_linger_s=self._batch_linger_s,
                    batch_interval_s=self._batch_interval_s,
                )
                try:
                    loop.run(stopping, self._ready)
                except ClientsBroken as exc:
                    self._ready.clear()
                    loop.abandon()
                    self._note_rebuild(rebuilds, ports.clock, exc)
                    continue
                except BaseException:
                    loop.close()
                    raise
                loop.close()
        finally:
            self._ready.clear()

    def _note_rebuild(self, rebuilds: list[float], clock: Clock, exc: ClientsBroken) -> None:
        now = clock.monotonic()
        rebuilds[:] = [at for at in rebuilds if now - at < REBUILD_WINDOW_S]
        rebuilds.append(now)
        if len(rebuilds) > MAX_REBUILDS:
            raise ClientsKeepBreaking(len(rebuilds), REBUILD_WINDOW_S, exc) from exc
        log.error("router: %s; building new Kafka clients", exc)
        self._metrics.clients_rebuilt.labels(type(exc).__name__).inc()


def _wait_ready(table: Subscriptions, clock: Clock, stopping: threading.Event) -> bool:
    deadline = clock.monotonic() + TABLE_READY_TIMEOUT_S
    while not table.wait_ready(0.1):
        if table.failure is not None:
            raise SubscriptionsUnavailable(str(table.failure)) from table.failure
        if stopping.is_set():
            return False
        if clock.monotonic() > deadline:
            raise SubscriptionsUnavailable(f"not caught up in {TABLE_READY_TIMEOUT_S:g} s")
    return True


class _RoutingLoop:
    """One consumer and one transactional producer, owned by the thread that runs `run`."""

    def __init__(
        self,
        settings: Settings,
        ports: Ports,
        metrics: RouterMetrics,
        *,
        transactional_id: str,
        batch_max_events: int,
        batch_linger_s: float,
        batch_interval_s: float,
    ) -> None:
        self._codec = ports.codec
        self._table = ports.subscriptions
        self._clients = ports.clients
        self._end_offsets = ports.end_offsets
        self._clock = ports.clock
        self._metrics = metrics
        self._transactional_id = transactional_id
        self._batch_max_events = batch_max_events
        self._linger = Linger(batch_linger_s, min_interval_s=batch_interval_s)
        self._events_topic = settings.topic("events")
        self._deliveries_topic = settings.topic("deliveries")
        self._dead_topic = settings.topic("dead-letters")
        self._subscriptions_topic = settings.topic("subscriptions")
        self._consumer = self._clients.consumer()
        self._producer: TransactionalProducer | None = None
        self._in_transaction = False
        self._fatal_in_a_row = 0
        self._snapshot: Mapping[str, Subscription] | None = None
        self._index = SubscriptionIndex(())
        self._next_lag_at = 0.0
        try:
            self._subscription_partitions = self._check_topics()
            self._producer = self._new_producer()
        except BaseException:
            self._consumer.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _check_topics(self) -> list[TopicPartition]:
        metadata = retry_transient(
            lambda: self._consumer.list_topics(timeout=30), what="reading the topics"
        )
        for name in (
            self._events_topic,
            self._deliveries_topic,
            self._dead_topic,
            self._subscriptions_topic,
        ):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise TopicError(name, "is missing; run 'hookline topics ensure'")
        partitions = metadata.topics[self._subscriptions_topic].partitions
        return [TopicPartition(self._subscriptions_topic, p) for p in sorted(partitions)]

    def _new_producer(self) -> TransactionalProducer:
        producer = self._clients.producer()
        # a broker that is restarting answers with retriable errors: init may be called again
        retry_transient(
            lambda: producer.init_transactions(TRANSACTION_TIMEOUT_S),
            what=f"initialising transactions of {self._transactional_id}",
        )
        return producer

    def abandon(self) -> None:
        """Leave both clients behind without waiting on them (either may be wedged)."""
        consumer, producer, self._producer = self._consumer, self._producer, None
        abandon(consumer, consumer.close, what="consumer")
        if producer is not None:
            abandon(producer, lambda: producer.flush(0), what="producer")

    def close(self) -> None:
        if self._in_transaction:
            self._abort()
        self._consumer.close()
        if self._producer is not None:
            self._producer.flush(TRANSACTION_TIMEOUT_S)
            self._producer = None

    def run(self, stopping: threading.Event, ready: threading.Event) -> None:
        self._consumer.subscribe(
            [self._events_topic],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )
        ready.set()
        while not stopping.is_set():
            if self._table.failure is not None:
                raise SubscriptionsUnavailable(str(self._table.failure)) from self._table.failure
            messages = self._next_batch()
            if messages:
                self._handle(messages)
            self._record_lag()

    def _next_batch(self) -> list[Message]:
        """Wait for one event, then take what else has arrived, gathering longer only while
        batches come back to back or the rate is high (`Linger`): an idle router adds
        nothing to an event's latency, and under load every transaction costs the broker
        and the router CPU that the deliverer needs (docs/benchmarks.md)."""
        first = self._consumer.poll(IDLE_WAIT_S)
        if first is None:
            return []
        if self._batch_max_events == 1:
            return [first]
        linger_s = self._linger.next_s(self._clock.monotonic())
        messages = [first, *self._consumer.consume(self._batch_max_events - 1, linger_s)]
        self._linger.read(self._clock.monotonic(), len(messages))
        return messages

    def _assigned(self, _consumer: EventConsumer, partitions: list[TopicPartition]) -> None:
        log.info("router: partitions assigned: %s", [tp.partition for tp in partitions])

    def _revoked(self, _consumer: EventConsumer, partitions: list[TopicPartition]) -> None:
        # Callbacks run inside consume(), and every batch commits before the next consume,
        # so no transaction is ever open here; abort defensively should that ever change.
        if self._in_transaction:
            self._abort()
        log.info("router: partitions revoked: %s", [tp.partition for tp in partitions])

    def _lost(self, _consumer: EventConsumer, partitions: list[TopicPartition]) -> None:
        log.warning("router: partitions lost: %s", [tp.partition for tp in partitions])

    # -- one batch -------------------------------------------------------------------------

    def _handle(self, messages: list[Message]) -> None:
        started, read_at_s = time.perf_counter(), time.time()
        self._barrier()
        batch = self._route(messages, read_at_s)
        if not batch.next:
            return
        if not self._transact(batch):
            self._rewind(batch)
            return
        routed_s = time.time() - read_at_s
        for _ in range(batch.records):
            self._metrics.route_to_commit.observe(routed_s)
        self._metrics.events.inc(batch.records)
        self._metrics.commands.inc(batch.commands)
        for reason, count in batch.dead.items():
            self._metrics.dead_letters.labels(reason).inc(count)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    def _barrier(self) -> None:
        """Wait until the table holds every subscription written before this batch's events."""
        try:
            ends = self._end_offsets(self._subscription_partitions)
        except KafkaException as exc:
            log.warning("router: cannot read the subscriptions' end offsets: %s", exc)
            return
        if not self._table.wait_caught_up(ends, timeout_s=BARRIER_TIMEOUT_S):
            log.warning("router: the subscriptions table is behind; routing with what it has")

    def _current_index(self) -> SubscriptionIndex:
        snapshot = self._table.snapshot()
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._index = SubscriptionIndex(snapshot.values())
            self._metrics.subscriptions.set(self._index.size)
        return self._index

    def _route(self, messages: list[Message], read_at_s: float) -> Batch:
        now = self._clock.now()
        index = self._current_index()
        batch = Batch()
        waited = self._metrics.event_to_router
        for message in messages:
            error = message.error()
            if error is None:
                waited.observe(max(0.0, read_at_s - message.timestamp()[1] / 1000))
                self._route_one(message, batch, index, now)
            elif error.fatal() or error.code() == KafkaError._FATAL:
                # this consumer will never fetch again; new clients are built (bounded)
                raise ConsumerFailed(error.str())
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("router: consume: %s", error.str())
        return batch

    def _route_one(
        self, message: Message, batch: Batch, index: SubscriptionIndex, now: datetime
    ) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        assert partition is not None
        assert offset is not None
        batch.consumed(topic, partition, offset)
        value = message.value()
        try:
            event = self._decode(value)
        except UndecodableRecord as exc:
            dead = undecodable_letter(
                Source(topic, partition, offset, message.key()),
                value,
                reason=exc.dead_letter_reason,
                error=str(exc.at(topic, partition, offset)),
                letter_id=str(uuid.uuid4()),
                at=now,
            )
            log.warning("router: dead-lettering: %s", exc)
            batch.outputs.append(
                (self._dead_topic, dead.key, self._codec.encode_dead_letter(dead.letter))
            )
            batch.dead[dead.letter.reason] += 1
            return
        subscriptions = index.route(event)
        with child_span(
            tracer("hookline.router"),
            f"route {event.type}",
            trace_of(event),
            kind=SpanKind.CONSUMER,
            attributes={"hookline.event_id": event.id, "hookline.commands": len(subscriptions)},
        ) as span:
            routed = with_trace(event, context_of(span))
        for command in commands_for(routed, subscriptions, now=now):
            encoded = self._codec.encode_delivery_command(command)
            batch.outputs.append(
                (self._deliveries_topic, command.subscription_id.encode(), encoded)
            )
            batch.commands += 1

    def _decode(self, value: bytes | None) -> DomainEvent:
        if value is None:
            raise UndecodableRecord("no value")
        return self._codec.decode_event(value)

    # -- the transaction -------------------------------------------------------------------

    def _transact(self, batch: Batch) -> bool:
        """Produce the batch and commit it with its offsets; False when it was aborted."""
        assert self._producer is not None
        producer = self._producer
        try:
            producer.begin_transaction()
            self._in_transaction = True
            for topic, key, value in batch.outputs:
                produce_within(
                    producer, topic, key=key, value=value, timeout_s=TRANSACTION_TIMEOUT_S
                )
            offsets, group = batch.offsets(), self._consumer.consumer_group_metadata()

            def send_and_commit() -> None:
                producer.send_offsets_to_transaction(offsets, group, TRANSACTION_TIMEOUT_S)
                self._commit(producer)

            with_deadline(send_and_commit, WEDGED_AFTER_S, self._transactional_id)
        except ProducerWedged:
            self._metrics.aborted.inc()
            self._in_transaction = False  # the next producer's init aborts it
            raise
        except ProduceTimeout as exc:  # acknowledgements stalled: the batch is read again
            self._metrics.aborted.inc()
            log.warning("router: aborting a transaction: %s", exc)
            self._abort()
            return False
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            self._metrics.aborted.inc()
            if error.fatal():
                self._in_transaction = False
                self._replace_producer(error)
            else:
                log.warning("router: aborting a transaction: %s", error.str())
                self._abort()
            return False
        self._in_transaction = False
        self._fatal_in_a_row = 0
        return True

    @staticmethod
    def _commit(producer: TransactionalProducer) -> None:
        for attempt in range(3):
            try:
                producer.commit_transaction(TRANSACTION_TIMEOUT_S)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if attempt == 2 or not error.retriable() or error.txn_requires_abort():
                    raise
                log.warning("router: retrying a commit: %s", error.str())
            else:
                return

    def _abort(self) -> None:
        assert self._producer is not None
        # A paused or restarting broker makes abort time out with a retriable error; the
        # abort may be retried (librdkafka's contract), so wait the outage out, bounded.
        deadline = self._clock.monotonic() + ABORT_PATIENCE_S
        while True:
            try:
                self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal():
                    self._in_transaction = False
                    self._replace_producer(error)
                    return
                if error.retriable() and self._clock.monotonic() < deadline:
                    log.warning("router: retrying an abort: %s", error.str())
                    continue
                raise
            self._in_transaction = False
            return

    def _replace_producer(self, error: KafkaError) -> None:
        """A fatal producer error: stop if fenced (a newer instance owns our id), else renew."""
        if error.code() in _FENCED_CODES:
            raise RouterFenced(self._transactional_id, error.str())
        self._fatal_in_a_row += 1
        if self._fatal_in_a_row > MAX_FATAL_IN_A_ROW:
            raise TransactionsFailing(self._transactional_id, self._fatal_in_a_row, error.str())
        log.error("router: fatal producer error, starting a new producer: %s", error.str())
        self._producer = None
        self._producer = self._new_producer()

    def _rewind(self, batch: Batch) -> None:
        """Read the aborted batch again, from its first offsets."""
        for tp in batch.starts():
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # revoked meanwhile: its new owner starts there
                log.info("router: cannot rewind %s[%d]: %s", tp.topic, tp.partition, exc)

    def _record_lag(self) -> None:
        if self._clock.monotonic() < self._next_lag_at:
            return
        self._next_lag_at = self._clock.monotonic() + LAG_EVERY_S
        assignment = self._consumer.assignment()
        lag = 0
        for tp in self._consumer.position(assignment) if assignment else []:
            watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            if watermarks is None or tp.offset < 0:
                continue
            lag += max(0, watermarks[1] - tp.offset)
        self._metrics.lag.set(lag)
