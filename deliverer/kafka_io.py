"""The deliverer's Kafka side, driven from its event loop thread with non-blocking calls only.

One consumer (group `<prefix>.deliverer`) reads `deliveries`, another (group
`<prefix>.deliverer.retries`) every `retry.<tier>`: in one group the assignor balances the
count of partitions over all seven topics, and could give one process every `deliveries`
partition and another only idle tiers. One idempotent producer writes attempts, retries and
dead letters. A retry not yet due pauses
its partition and seeks back to it, so that tier partition waits without holding up any
other. Offsets are committed per partition up to the first command whose outputs are not
yet acknowledged (`core.lanes.PartitionOffsets`); on revoke the finished prefix is committed,
on a lost assignment nothing is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeAlias

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from core.attempts import is_due
from core.lanes import PartitionOffsets
from core.records import DeliveryCommand
from core.retry import TIERS
from deliverer.errors import OutputLost
from deliverer.metrics import DelivererMetrics
from hookline.kafka import consumer_config, producer_config
from hookline.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

TP: TypeAlias = tuple[str, int]
COMMIT_INTERVAL_S: Final = 0.5
DEPTH_INTERVAL_S: Final = 2.0
OUTPUT_LINGER_MS: Final = 20
"""Attempts and retries are off the webhook's latency path: bigger batches, less CPU for
this process and the broker."""
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
"""Outputs carry the command's payload; the broker's own limit is the real bound."""


def deliveries_group(settings: Settings) -> str:
    """The consumer group reading `deliveries` (tools that watch or inspect it use this)."""
    return f"{settings.topic_prefix}.deliverer"


@dataclass(frozen=True, slots=True)
class Work:
    """A decoded command and where it came from; `offsets` is its partition's bookkeeping."""

    topic: str
    partition: int
    offset: int
    command: DeliveryCommand
    offsets: PartitionOffsets


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record that could not be decoded: dead-letter it, then finish its offset."""

    message: Message
    error: UndecodableRecord
    offsets: PartitionOffsets


Polled: TypeAlias = Work | Undecodable


class KafkaIO:
    def __init__(
        self,
        settings: Settings,
        codec: RecordCodec,
        metrics: DelivererMetrics,
        *,
        client_id: str,
    ) -> None:
        self._codec = codec
        self._metrics = metrics
        self.deliveries = settings.topic("deliveries")
        self.tier_topics = {settings.topic(f"retry.{tier}"): tier for tier in TIERS}
        self._consumer = Consumer(
            consumer_config(settings, group_id=deliveries_group(settings), client_id=client_id)
        )
        self._tier_consumer = Consumer(
            consumer_config(
                settings,
                group_id=f"{deliveries_group(settings)}.retries",
                client_id=f"{client_id}-retries",
            )
        )
        self._producer = Producer(
            producer_config(settings, client_id=client_id, linger_ms=OUTPUT_LINGER_MS)
            | {"message.max.bytes": MAX_MESSAGE_BYTES}
        )
        self._offsets: dict[TP, PartitionOffsets] = {}
        self._holds: dict[TP, datetime] = {}
        self._paused: dict[TP, set[str]] = {}
        self._last_commit = 0.0
        self._last_depth = 0.0
        self.assigned_once = False

    # -- lifecycle ---------------------------------------------------------------------------

    def subscribe(self) -> None:
        for consumer, topics in (
            (self._consumer, [self.deliveries]),
            (self._tier_consumer, list(self.tier_topics)),
        ):
            consumer.subscribe(
                topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )

    def _consumer_of(self, topic: str) -> Consumer:
        return self._tier_consumer if topic in self.tier_topics else self._consumer

    def close(self) -> None:
        """Flush outputs, commit the finished prefix, leave the groups."""
        self._producer.flush(30)
        self.commit(sync=True)
        self._consumer.close()
        self._tier_consumer.close()

    # -- reading -----------------------------------------------------------------------------

    def poll(self, max_messages: int) -> list[Polled]:
        """Whatever is ready now (never blocks); serves rebalance callbacks too."""
        polled: list[Polled] = []
        now = datetime.now(UTC)
        messages = self._consumer.consume(num_messages=max_messages, timeout=0)
        messages += self._tier_consumer.consume(num_messages=max_messages, timeout=0)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("deliverer consumer: %s", error.str())
                    if error.fatal():
                        raise KafkaException(error)
                continue
            item = self._take(message, now)
            if item is not None:
                polled.append(item)
        return polled

    def _take(self, message: Message, now: datetime) -> Polled | None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        assert partition is not None
        assert offset is not None
        tp = (topic, partition)
        offsets = self._offsets.get(tp)
        if offsets is None or tp in self._holds or offsets.has_read(offset):
            return None  # revoked meanwhile, behind a held retry (re-read after the seek), or seen
        try:
            command = self._codec.decode_delivery_command(message.value() or b"")
        except UndecodableRecord as exc:
            offsets.read(offset)
            return Undecodable(message, exc.at(topic, partition, offset), offsets)
        if topic in self.tier_topics and not is_due(command, now):
            assert command.not_before is not None
            self._hold(tp, offset, command.not_before)
            return None
        offsets.read(offset)
        return Work(topic, partition, offset, command, offsets)

    def _hold(self, tp: TP, offset: int, due: datetime) -> None:
        self.pause(tp, "hold")
        self._tier_consumer.seek(TopicPartition(tp[0], tp[1], offset))
        self._holds[tp] = due

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

    def tick(self) -> None:
        """Serve producer callbacks, release due retries, commit and measure now and then."""
        self._producer.poll(0)
        if self._holds:
            now = datetime.now(UTC)
            for tp, due in list(self._holds.items()):
                if due <= now:
                    del self._holds[tp]
                    self.unpause(tp, "hold")
        clock = time.monotonic()
        if clock - self._last_commit >= COMMIT_INTERVAL_S:
            self._last_commit = clock
            self.commit(sync=False)
        if clock - self._last_depth >= DEPTH_INTERVAL_S:
            self._last_depth = clock
            self._measure_tiers()

    # -- writing -------------------------------------------------------------------------------

    async def send(self, topic: str, key: str | None, value: bytes) -> None:
        """Produce one record and return once Kafka acknowledged it (acks=all)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(OutputLost(topic, err.str()))
            else:
                future.set_result(None)

        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                self._producer.poll(0)
                await asyncio.sleep(0.005)
        await future

    def produce(
        self, topic: str, key: str | None, value: bytes, acked: Callable[[KafkaError | None], None]
    ) -> None:
        """Produce one record; `acked(None)` runs (in `tick`) once Kafka acknowledged it, or
        `acked(error)` when it never will. The cheap path: no future, no task wake-up."""
        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, on_delivery=lambda err, _msg: acked(err)
                )
            except BufferError:  # the local queue is full: serve acknowledgements a moment
                self._producer.poll(0.005)
            else:
                return

    # -- commits -------------------------------------------------------------------------------

    def commit(self, *, sync: bool, only: Iterable[TP] | None = None) -> None:
        chosen = self._offsets.keys() if only is None else list(only)
        commits: dict[bool, list[TopicPartition]] = {False: [], True: []}  # by "is a tier"
        for tp in chosen:
            offsets = self._offsets.get(tp)
            position = None if offsets is None else offsets.to_commit()
            if offsets is not None and position is not None:
                commits[tp[0] in self.tier_topics].append(TopicPartition(tp[0], tp[1], position))
                offsets.committed(position)
        for consumer, tps in (
            (self._consumer, commits[False]),
            (self._tier_consumer, commits[True]),
        ):
            if not tps:
                continue
            try:
                if sync:
                    consumer.commit(offsets=tps, asynchronous=False)
                else:
                    consumer.commit(offsets=tps, asynchronous=True)
            except KafkaException as exc:
                # the next commit covers it; a lost commit only means redelivery (at least once)
                log.warning("deliverer commit failed: %s", exc)

    # -- rebalance callbacks run inside consume(), on the loop thread --------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._offsets[(tp.topic, tp.partition)] = PartitionOffsets()
        self.assigned_once = True

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        self.commit(sync=True, only=revoked)
        self._forget(revoked)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, tps: Iterable[TP]) -> None:
        # work still running for these partitions finishes into orphaned bookkeeping: the
        # new owner re-reads it from the committed offset (at least once)
        for tp in tps:
            self._offsets.pop(tp, None)
            self._holds.pop(tp, None)
            self._paused.pop(tp, None)
        self._metrics.paused_partitions.set(len(self._paused))

    def _measure_tiers(self) -> None:
        depths = dict.fromkeys(TIERS, 0)
        for topic, partition in self._offsets:
            tier = self.tier_topics.get(topic)
            if tier is None:
                continue
            tp = TopicPartition(topic, partition)
            try:
                low, high = self._tier_consumer.get_watermark_offsets(tp, cached=True)
                position = self._tier_consumer.position([tp])[0].offset
            except KafkaException:
                continue
            if high >= 0:
                depths[tier] += max(0, high - max(position, low))
        for tier, depth in depths.items():
            self._metrics.retry_tier_depth.labels(tier).set(depth)
