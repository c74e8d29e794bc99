"""What the router emits for one record, as plain values (no I/O).

A decoded event becomes one `DeliveryCommand` per matching subscription, sharing one rendered
body; a record that cannot be decoded becomes a `DeadLetter` carrying its coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.commands import event_body, new_command
from core.records import DeadLetter, DeliveryCommand, DomainEvent, Subscription
from schemas.errors import UndecodableRecord, UnknownWriterSchema

REASON_UNDECODABLE = "undecodable event"
REASON_NO_SCHEMA = "unknown event schema"


def commands_for(
    event: DomainEvent, subscriptions: Sequence[Subscription], *, now: datetime
) -> list[DeliveryCommand]:
    """One command per subscription; the delivery id is derived from (event id, subscription id)."""
    if not subscriptions:
        return []
    payload = event_body(event)
    return [new_command(event, sub.id, payload=payload, now=now) for sub in subscriptions]


def undecodable_letter(
    error: UndecodableRecord, *, letter_id: str, raw_value: bytes | None, now: datetime
) -> DeadLetter:
    """The dead letter of a record `error` says cannot be read; `error.at(...)` was called."""
    assert error.topic is not None
    assert error.partition is not None
    assert error.offset is not None
    reason = REASON_NO_SCHEMA if isinstance(error, UnknownWriterSchema) else REASON_UNDECODABLE
    return DeadLetter(
        id=letter_id,
        reason=reason,
        at=now,
        subscription_id=None,
        command=None,
        source_topic=error.topic,
        source_partition=error.partition,
        source_offset=error.offset,
        raw_value=raw_value,
        error=str(error),
    )
