"""The log-backed schema registry: writer schemas by fingerprint, kept on a compacted topic.

A writer registers each schema before first use (published once per process, acknowledged
by all in-sync replicas); a reader that meets an unknown fingerprint re-reads the topic to
its end before giving up. `SchemaRegistry` holds the rules and the memory; a `SchemaStore`
does the I/O (`KafkaSchemaStore` in services, an in-memory fake in unit tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from hookline.kafka import is_transient, retry_transient
from schemas.codec import AvroSchema, fingerprint_hex
from schemas.errors import InvalidSchema, SchemaStoreError

KafkaConfig = Mapping[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """One record of the schemas topic: the fingerprint in hex and the canonical JSON."""

    key: str
    value: str


class SchemaStore(Protocol):
    """Where schemas persist. Implementations are used under the registry's lock."""

    def publish(self, key: str, value: str) -> None:
        """Write one schema durably; returns once it is acknowledged."""
        ...

    def read_new(self) -> Sequence[StoredSchema]:
        """Records up to the end offsets taken now, not returned before (the first call
        reads from the beginning)."""
        ...


class SchemaRegistry:
    """Writer schemas by fingerprint, in memory, backed by a `SchemaStore`. Thread-safe."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self._by_fingerprint: dict[bytes, AvroSchema] = {}
        self._lock = threading.Lock()

    def load(self) -> int:
        """Read the store to its end; call before reporting ready. Returns schemas known."""
        with self._lock:
            self._catch_up()
            return len(self._by_fingerprint)

    def register(self, schema: AvroSchema) -> None:
        """Make `schema` resolvable by every reader; publishes it unless already known."""
        if schema.fingerprint in self._by_fingerprint:
            return
        with self._lock:
            if schema.fingerprint in self._by_fingerprint:
                return
            self._store.publish(fingerprint_hex(schema.fingerprint), schema.canonical)
            self._by_fingerprint[schema.fingerprint] = schema

    def lookup(self, fingerprint: bytes) -> AvroSchema | None:
        """The schema with this fingerprint; on a miss, re-reads the store before giving up."""
        found = self._by_fingerprint.get(fingerprint)  # a dict read is atomic: no lock
        if found is not None:
            return found
        with self._lock:
            found = self._by_fingerprint.get(fingerprint)
            if found is None:
                self._catch_up()
                found = self._by_fingerprint.get(fingerprint)
            return found

    def known(self) -> tuple[AvroSchema, ...]:
        return tuple(self._by_fingerprint.values())

    def _catch_up(self) -> None:
        for stored in self._store.read_new():
            try:
                schema = AvroSchema.from_json(stored.value)
            except InvalidSchema:
                continue  # a record no schema parser accepts can never resolve a value
            if schema.fingerprint_hex == stored.key:
                self._by_fingerprint.setdefault(schema.fingerprint, schema)


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
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        try:
            self._producer.produce(self.topic, value=value.encode(), key=key, on_delivery=delivered)
            unsent = self._producer.flush(self._timeout_s)
        except (KafkaException, BufferError) as exc:
            raise SchemaStoreError(self.topic, f"publishing {key}: {exc}") from exc
        if errors:
            raise SchemaStoreError(self.topic, f"publishing {key}: {errors[0].str()}")
        if unsent:
            raise SchemaStoreError(self.topic, f"publishing {key}: not acknowledged in time")

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
