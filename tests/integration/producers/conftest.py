"""Fixtures of the producers' integration tests: topics, a codec, an events reader, and a
PostgreSQL schema of the test's own holding the outbox table."""

from __future__ import annotations

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from core.records import DomainEvent
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.kafka import admin_config, reader_config
from hookline.runtime.settings import Settings
from tests.waiting import eventually


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    admin = AdminClient(admin_config(settings))  # kept alive until the futures complete
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    latest = OffsetSpec.latest()
    futures = admin.list_offsets(
        {TopicPartition(topic, p): latest for p in partitions}, request_timeout=10
    )
    return {tp.partition: future.result(timeout=15).offset for tp, future in futures.items()}


def read_events(settings: Settings, *, timeout_s: float = 30.0) -> list[Message]:
    """Every record on the events topic now, in partition order."""
    topic = settings.topic("events")
    ends = end_offsets(settings, topic)
    config = reader_config(settings, client_id=f"producers-test-{uuid.uuid4().hex[:8]}")
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        messages: list[Message] = []

        def read_all() -> bool:
            for message in consumer.consume(1000, 0.1):
                error = message.error()
                assert error is None or error.code() == KafkaError._PARTITION_EOF, error
                if error is None:
                    messages.append(message)
            return len(messages) >= sum(ends.values())

        eventually(read_all, f"the {sum(ends.values())} records on {topic}", timeout_s=timeout_s)
        return messages
    finally:
        consumer.close()


def decode_all(runtime: CodecRuntime, messages: list[Message]) -> list[DomainEvent]:
    return [runtime.codec.decode_event(m.value() or b"") for m in messages]
