"""The schema registry's store on a compacted Kafka topic keyed by fingerprint hex."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from hookline.runtime.errors import ProduceFailed
from hookline.runtime.kafka import is_transient, retry_transient
from hookline.runtime.producing import Acks
from schemas.errors import SchemaStoreError
from schemas.registry import StoredSchema

KafkaConfig = Mapping[str, str | int | float | bool]


class KafkaSchemaStore:
    """A `SchemaStore` on a compacted Kafka topic keyed by fingerprint hex.

    It reads without a consumer group: partitions are assigned explicitly and never
    committed. The consumer stays assigned between reads, so a re-read after a miss only
    fetches what was written since the last one.
    """

    def __init__(
        self,
        *,
        topic: str,
        producer_config: KafkaConfig,
        consumer_config: KafkaConfig,
        timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._producer_config: dict[str, str | int | float | bool] = {
            **producer_config,
            "acks": "all",
            "enable.idempotence": True,
        }
        self._consumer_config: dict[str, str | int | float | bool] = {
            "group.id": "hookline-schemas-reader",  # required by librdkafka, never used
            **consumer_config,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._positions: dict[int, int] = {}

    def publish(self, key: str, value: str) -> None:
        if self._producer is None:
            self._producer = Producer(self._producer_config)
        try:
            Acks(self._producer, timeout_s=self._timeout_s).write(
                self.topic, key=key, value=value.encode()
            )
        except ProduceFailed as exc:
            raise SchemaStoreError(self.topic, f"publishing {key}: {exc.reason}") from exc

    def read_new(self) -> list[StoredSchema]:
        """Read to the end offsets; a broker that is recovering is waited for (bounded)."""
        try:
            return retry_transient(self._read_new, what=f"reading {self.topic}")
        except KafkaException as exc:
            raise SchemaStoreError(self.topic, f"reading: {exc}") from exc

    def _read_new(self) -> list[StoredSchema]:
        consumer = self._assigned_consumer()
        ends = self._end_offsets(consumer)
        return self._read_until(consumer, ends)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout_s)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _assigned_consumer(self) -> Consumer:
        if self._consumer is not None:
            return self._consumer
        consumer = Consumer(self._consumer_config)
        try:
            metadata = consumer.list_topics(self.topic, timeout=self._timeout_s)
        except KafkaException:
            consumer.close()
            raise
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            consumer.close()
            reason = "missing" if topic is None or topic.error is None else topic.error.str()
            raise SchemaStoreError(self.topic, f"cannot read the topic: {reason}")
        partitions = sorted(topic.partitions)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._positions = dict.fromkeys(partitions, 0)
        self._consumer = consumer
        return consumer

    def _end_offsets(self, consumer: Consumer) -> dict[int, int]:
        ends: dict[int, int] = {}
        for partition in self._positions:
            tp = TopicPartition(self.topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=self._timeout_s)
            # Reading starts at the low watermark; anything below it is gone.
            self._positions[partition] = max(self._positions[partition], low)
            ends[partition] = high
        return ends

    def _read_until(self, consumer: Consumer, ends: dict[int, int]) -> list[StoredSchema]:
        pending = {p for p, end in ends.items() if self._positions[p] < end}
        found: list[StoredSchema] = []
        deadline = time.monotonic() + self._timeout_s
        while pending:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise SchemaStoreError(self.topic, f"partitions {sorted(pending)} not read in time")
            msg = consumer.poll(min(remaining_s, 1.0))
            if msg is None:
                continue
            partition, offset = msg.partition(), msg.offset()
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._reached_end(pending, ends, partition, offset)
                    continue
                if is_transient(err):  # the consumer fetches again once the leader is back
                    continue
                raise SchemaStoreError(self.topic, f"reading: {err.str()}")
            if partition is None or offset is None:
                continue
            self._positions[partition] = offset + 1
            if self._positions[partition] >= ends[partition]:
                pending.discard(partition)
            stored = _stored(msg)
            if stored is not None:
                found.append(stored)
        return found

    def _reached_end(
        self, pending: set[int], ends: dict[int, int], partition: int | None, offset: int | None
    ) -> None:
        # Compaction and transaction markers leave gaps, so the last record's offset may stay
        # below the end; EOF says the end is reached. An EOF left over from an earlier read
        # carries an older offset and must not end this one.
        if partition is None or offset is None or offset < ends[partition]:
            return
        self._positions[partition] = max(self._positions[partition], offset)
        pending.discard(partition)


def _stored(msg: Message) -> StoredSchema | None:
    key, value = msg.key(), msg.value()
    if key is None or value is None:  # a tombstone: nothing to resolve
        return None
    try:
        return StoredSchema(key.decode(), value.decode())
    except UnicodeDecodeError:
        return None
