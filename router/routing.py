"""What the router emits for one record, as plain values (no I/O).

A decoded event becomes one `DeliveryCommand` per matching subscription, sharing one rendered
body (a record that cannot be decoded becomes `core.undecodable`'s dead letter).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.commands import event_body, new_command
from core.records import DeliveryCommand, DomainEvent, Subscription


def commands_for(
    event: DomainEvent, subscriptions: Sequence[Subscription], *, now: datetime
) -> list[DeliveryCommand]:
    """One command per subscription; the delivery id is derived from (event id, subscription id)."""
    if not subscriptions:
        return []
    payload = event_body(event)
    return [new_command(event, sub.id, payload=payload, now=now) for sub in subscriptions]
