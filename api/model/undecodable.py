"""Records that cannot be decoded go to the dead-letters topic with their coordinates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from confluent_kafka import Message, Producer

from core.records import DeadLetter, utc_ms
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec


def dead_letter_undecodable(
    settings: Settings,
    codec: RecordCodec,
    producer: Producer,
    message: Message,
    error: UndecodableRecord,
) -> None:
    """Queue a DeadLetter for `message` (the caller flushes before storing its offset)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None
    assert partition is not None
    assert offset is not None
    error.at(topic, partition, offset)
    letter = DeadLetter(
        id=str(uuid.uuid4()),
        reason="undecodable",
        at=utc_ms(datetime.now(UTC)),
        subscription_id=None,
        command=None,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        raw_value=message.value(),
        error=str(error),
    )
    producer.produce(
        settings.topic("dead-letters"), key=None, value=codec.encode_dead_letter(letter)
    )
