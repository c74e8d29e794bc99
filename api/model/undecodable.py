"""Records that cannot be decoded go to the dead-letters topic with their coordinates.

The letter is one of the caller's step's `Acks`: the caller waits for them before it stores
the record's offset, so a letter Kafka refuses stops the step instead of being lost.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from confluent_kafka import Message

from core.records import utc_ms
from core.undecodable import Source, undecodable_letter
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec


def dead_letter_undecodable(
    settings: Settings, codec: RecordCodec, acks: Acks, message: Message, error: UndecodableRecord
) -> None:
    """Queue the dead letter of `message` among `acks` (the caller waits for them)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None
    assert partition is not None
    assert offset is not None
    dead = undecodable_letter(
        Source(topic, partition, offset, message.key()),
        message.value(),
        reason=error.dead_letter_reason,
        error=str(error.at(topic, partition, offset)),
        letter_id=str(uuid.uuid4()),
        at=utc_ms(datetime.now(UTC)),
    )
    acks.produce(
        settings.topic("dead-letters"), key=dead.key, value=codec.encode_dead_letter(dead.letter)
    )
