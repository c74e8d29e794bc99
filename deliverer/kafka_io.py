"""The deliverer's Kafka side, driven from its event loop thread with non-blocking calls only.

One consumer (group `<prefix>.deliverer`) reads `deliveries`; a partition it is given stays
paused until its backlog has been restored from the changelog (`deliverer.restoring`). A
second consumer (group `<prefix>.deliverer.retries`) reads the legacy `retry.<tier>` topics
(written by versions before the backlog store) and forwards each record to `deliveries`
at once, where a command not yet due goes into the backlog: nothing waits in a tier. One
idempotent producer writes attempts, backlog changelog records and dead letters. Offsets
are committed per partition up to the first command whose outputs are not yet
acknowledged (`core.lanes.PartitionOffsets`), and a position counts as committed only once
Kafka confirmed it; on revoke the finished prefix is committed, on a lost assignment nothing
is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from core.lanes import PartitionOffsets
from core.retry import TIERS
from deliverer.errors import OutputLost
from deliverer.metrics import DelivererMetrics
from deliverer.ports import CommitReports, KafkaConsumer
from hookline.runtime.clock import Clock
from hookline.runtime.kafka import TRANSIENT_PATIENCE_S
from hookline.runtime.producing import KafkaProducer, produce_within
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

TP: TypeAlias = tuple[str, int]
Headers: TypeAlias = list[tuple[str, bytes]]
COMMIT_INTERVAL_S: Final = 0.5
RESTORING: Final = "restore"
DUE_HEADER: Final = "hookline-due"
QUEUE_FULL_POLL_S: Final = 0.005
"""How long a full local queue is polled for acknowledgements before producing again: short,
since the loop that waits also sends webhooks."""
"""Set on a command forwarded from a legacy retry tier: when it is due (epoch ms)."""


@dataclass(frozen=True, slots=True)
class Work:
    """A command read from `deliveries`, not yet decoded: its subscription is the record's
    key, so a command bound for the backlog is stored as read, never decoded on the way.
    `offsets` is its partition's bookkeeping."""

    topic: str
    partition: int
    offset: int
    subscription_id: str
    value: bytes
    created_ms: int
    due_ms: int
    offsets: PartitionOffsets
    message: Message


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record that could not be decoded: dead-letter it, then finish its offset."""

    message: Message
    error: UndecodableRecord
    offsets: PartitionOffsets


@dataclass(frozen=True, slots=True)
class Forward:
    """A record of a legacy retry tier: produce it to `deliveries`, then finish its offset."""

    message: Message
    offsets: PartitionOffsets


Polled: TypeAlias = Work | Undecodable | Forward


class Rebalance(Protocol):
    """Told which `deliveries` partitions this process gained or gave up."""

    def assigned(self, partitions: Sequence[int]) -> None: ...

    def revoked(self, partitions: Sequence[int]) -> None: ...


class KafkaIO:
    """The consumers and the producer, built by the composition root (`deliverer.bootstrap`)."""

    def __init__(
        self,
        settings: Settings,
        codec: RecordCodec,
        metrics: DelivererMetrics,
        *,
        consumer: KafkaConsumer,
        tier_consumer: KafkaConsumer,
        producer: KafkaProducer,
        commits: CommitReports,
        clock: Clock,
    ) -> None:
        self._codec = codec
        self._metrics = metrics
        self.deliveries = settings.topic("deliveries")
        self.backlog = settings.topic("deliverer-backlog")
        self.tier_topics = {settings.topic(f"retry.{tier}"): tier for tier in TIERS}
        self._consumer = consumer
        self._tier_consumer = tier_consumer
        self._producer = producer
        self._commits = commits
        self._clock = clock
        self._offsets: dict[TP, PartitionOffsets] = {}
        self._paused: dict[TP, set[str]] = {}
        self._last_commit = 0.0
        self.listener: Rebalance | None = None
        self.failure: KafkaException | None = None
        """A fatal commit error: the consumer can no longer commit, the process must stop."""

    # -- lifecycle ---------------------------------------------------------------------------

    def subscribe(self, listener: Rebalance) -> None:
        self.listener = listener
        self._consumer.subscribe(
            [self.deliveries],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._tier_consumer.subscribe(
            list(self.tier_topics),
            on_assign=self._on_assign_tiers,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _consumer_of(self, topic: str) -> KafkaConsumer:
        return self._tier_consumer if topic in self.tier_topics else self._consumer

    def close(self) -> None:
        """Flush outputs, commit the finished prefix, leave the groups."""
        self._producer.flush(30)
        self.commit(sync=True)
        self._consumer.close()
        self._tier_consumer.close()

    def owns(self, partition: int) -> bool:
        """Whether this process owns `deliveries` partition `partition` (and its backlog)."""
        return (self.deliveries, partition) in self._offsets

    def partition_count(self, topic: str) -> int:
        metadata = self._consumer.list_topics(topic, timeout=10)
        return len(metadata.topics[topic].partitions)

    # -- reading -----------------------------------------------------------------------------

    def poll(self, max_messages: int) -> list[Polled]:
        """Whatever is ready now (never blocks); serves rebalance callbacks too."""
        polled: list[Polled] = []
        messages = self._consumer.consume(num_messages=max_messages, timeout=0)
        messages += self._tier_consumer.consume(num_messages=max_messages, timeout=0)
        self._apply_commit_reports()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("deliverer consumer: %s", error.str())
                    if error.fatal():
                        raise KafkaException(error)
                continue
            item = self._take(message)
            if item is not None:
                polled.append(item)
        return polled

    def _take(self, message: Message) -> Polled | None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        assert partition is not None
        assert offset is not None
        tp = (topic, partition)
        offsets = self._offsets.get(tp)
        if offsets is None or offsets.has_read(offset):
            return None  # revoked meanwhile, or seen
        offsets.read(offset)
        if topic in self.tier_topics:
            return Forward(message, offsets)
        value = message.value() or b""
        key = message.key()
        try:
            sub_id = (key or b"").decode()
        except UnicodeDecodeError:
            sub_id = ""
        due_ms = 0
        created_ms = message.timestamp()[1]
        if not sub_id:  # not written by hookline: learn the subscription from the command
            try:
                command = self._codec.decode_delivery_command(value)
            except UndecodableRecord as exc:
                return Undecodable(message, exc.at(topic, partition, offset), offsets)
            sub_id = command.subscription_id
        for name, raw in message.headers() or ():
            if name == DUE_HEADER:
                due_ms = int(raw)
        return Work(topic, partition, offset, sub_id, value, created_ms, due_ms, offsets, message)

    # -- flow control ------------------------------------------------------------------------

    def pause(self, tp: TP, reason: str) -> None:
        if tp not in self._offsets:
            return
        reasons = self._paused.setdefault(tp, set())
        if not reasons:
            self._consumer_of(tp[0]).pause([TopicPartition(*tp)])
        reasons.add(reason)
        self._metrics.paused_partitions.set(len(self._paused))

    def unpause(self, tp: TP, reason: str) -> None:
        reasons = self._paused.get(tp)
        if reasons is None or reason not in reasons:
            return
        reasons.discard(reason)
        if not reasons:
            del self._paused[tp]
            if tp in self._offsets:
                self._consumer_of(tp[0]).resume([TopicPartition(*tp)])
        self._metrics.paused_partitions.set(len(self._paused))

    def pause_all(self, reason: str) -> None:
        for tp in list(self._offsets):
            self.pause(tp, reason)

    def unpause_all(self, reason: str) -> None:
        for tp in list(self._paused):
            self.unpause(tp, reason)

    def restored(self, partition: int) -> None:
        """The partition's backlog is in the store: its commands may flow."""
        self.unpause((self.deliveries, partition), RESTORING)

    def tick(self) -> None:
        """Serve producer callbacks, commit now and then."""
        self._producer.poll(0)
        clock = self._clock.monotonic()
        if clock - self._last_commit >= COMMIT_INTERVAL_S:
            self._last_commit = clock
            self.commit(sync=False)

    # -- writing -------------------------------------------------------------------------------

    async def send(self, topic: str, key: str | None, value: bytes) -> None:
        """Produce one record and return once Kafka acknowledged it (acks=all)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def acked(err: KafkaError | None) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(OutputLost(topic, err.str()))
            else:
                future.set_result(None)

        self.produce(topic, key, value, acked)
        await future

    def produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        acked: Callable[[KafkaError | None], None],
        *,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Produce one record; `acked(None)` runs (in `tick`) once Kafka acknowledged it, or
        `acked(error)` when it never will. The cheap path: no future, no task wake-up."""
        produce_within(
            self._producer,
            topic,
            key=key,
            value=value,
            on_delivery=lambda err, _msg: acked(err),
            partition=partition,
            headers=headers,
            poll_s=QUEUE_FULL_POLL_S,
            timeout_s=TRANSIENT_PATIENCE_S,  # a queue full that long: the broker is gone
        )

    # -- commits -------------------------------------------------------------------------------

    def commit(self, *, sync: bool, only: Iterable[TP] | None = None) -> None:
        """Commit each partition's finished prefix where it moved since the last commit Kafka
        confirmed. A position counts as committed only once the broker said so (an
        asynchronous commit's `on_commit` report, a synchronous commit's result), so a failed
        commit is sent again at the next turn even when its partition has gone quiet."""
        chosen = self._offsets.keys() if only is None else list(only)
        commits: dict[bool, list[TopicPartition]] = {False: [], True: []}  # by "is a tier"
        for tp in chosen:
            offsets = self._offsets.get(tp)
            position = None if offsets is None else offsets.to_commit()
            if position is not None:
                commits[tp[0] in self.tier_topics].append(TopicPartition(tp[0], tp[1], position))
        for consumer, tps in (
            (self._consumer, commits[False]),
            (self._tier_consumer, commits[True]),
        ):
            if not tps:
                continue
            try:
                confirmed = consumer.commit(offsets=tps, asynchronous=not sync)
            except KafkaException as exc:
                self._commit_failed(exc.args[0])
                continue
            if sync and confirmed is not None:
                self._committed(confirmed)

    def _apply_commit_reports(self) -> None:
        for error, partitions in self._commits.take():
            if error is None:
                self._committed(partitions)
            else:
                self._commit_failed(error)

    def _committed(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            offsets = self._offsets.get((tp.topic, tp.partition))
            if tp.error is not None:
                self._commit_failed(tp.error)
            elif offsets is not None and tp.offset >= 0:
                offsets.committed(tp.offset)

    def _commit_failed(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("deliverer commit failed for good: %s", error.str())
            if self.failure is None:
                self.failure = KafkaException(error)
            return
        # retried at the next commit: until then only redelivery is at stake (at least once)
        log.warning("deliverer commit failed: %s", error.str())

    # -- rebalance callbacks run inside consume(), on the loop thread --------------------------

    def _on_assign(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # assigned here, not after the callback, so that each partition is paused from its
        # first fetch until its backlog is restored
        consumer.incremental_assign(partitions)
        for tp in partitions:
            self._offsets[(tp.topic, tp.partition)] = PartitionOffsets()
            self.pause((tp.topic, tp.partition), RESTORING)
        if self.listener is not None:
            self.listener.assigned([tp.partition for tp in partitions])

    def _on_assign_tiers(self, _consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._offsets[(tp.topic, tp.partition)] = PartitionOffsets()

    def _on_revoke(self, _consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        self.commit(sync=True, only=revoked)
        self._forget(revoked)

    def _on_lost(self, _consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, tps: Sequence[TP]) -> None:
        # work still running for these partitions finishes into orphaned bookkeeping: the
        # new owner re-reads it from the committed offset (at least once)
        for tp in tps:
            self._offsets.pop(tp, None)
            self._paused.pop(tp, None)
        self._metrics.paused_partitions.set(len(self._paused))
        gone = [partition for topic, partition in tps if topic == self.deliveries]
        if gone and self.listener is not None:
            self.listener.revoked(gone)
