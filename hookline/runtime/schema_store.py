"""The schema registry's store on a compacted Kafka topic keyed by fingerprint hex."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaException, Message, Producer

from hookline.runtime.errors import ProduceFailed, TableError
from hookline.runtime.kafka import retry_transient
from hookline.runtime.producing import Acks
from hookline.runtime.table import TopicReader
from schemas.errors import SchemaStoreError
from schemas.registry import StoredSchema

KafkaConfig = Mapping[str, str | int | float | bool]


class KafkaSchemaStore:
    """A `SchemaStore` on a compacted Kafka topic keyed by fingerprint hex.

    It reads with a `TopicReader` (no consumer group, nothing committed) that stays assigned
    between reads, so a re-read after a miss only fetches what was written since the last one.
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
        self._consumer_config = dict(consumer_config)
        self._producer: Producer | None = None
        self._reader: TopicReader | None = None

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
        if self._reader is None:
            self._reader = TopicReader(self._consumer_config, self.topic, timeout_s=self._timeout_s)
        try:
            messages = retry_transient(self._reader.read_to_end, what=f"reading {self.topic}")
        except TableError as exc:
            raise SchemaStoreError(self.topic, exc.reason) from exc
        except KafkaException as exc:
            raise SchemaStoreError(self.topic, f"reading: {exc}") from exc
        return [stored for msg in messages if (stored := _stored(msg)) is not None]

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout_s)
            self._producer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _stored(msg: Message) -> StoredSchema | None:
    key, value = msg.key(), msg.value()
    if key is None or value is None:  # a tombstone: nothing to resolve
        return None
    try:
        return StoredSchema(key.decode(), value.decode())
    except UnicodeDecodeError:
        return None
