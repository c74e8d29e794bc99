"""Sending a stored delivery again (redeliver, recover): the same delivery id and event id,
so the receiver sees the same `webhook-id`; a fresh attempt count (its own retry schedule)
and creation time, its attempts numbered on from those the history holds."""

from __future__ import annotations

from datetime import UTC, datetime

from api.model.history import StoredCommand
from core.records import DeliveryCommand, DeliveryOrigin, utc_ms


def reissue_command(
    stored: StoredCommand, *, origin: DeliveryOrigin, job_id: str | None
) -> DeliveryCommand:
    return DeliveryCommand(
        delivery_id=stored.delivery_id,
        event_id=stored.event_id,
        event_type=stored.event_type,
        tenant=stored.tenant,
        subscription_id=stored.subscription_id,
        occurred_at=utc_ms(stored.occurred_at),
        payload=bytes(stored.payload),
        attempt=0,
        created_at=utc_ms(datetime.now(UTC)),
        not_before=None,
        origin=origin,
        job_id=job_id,
        last_error=None,
        prior_attempts=stored.attempts,
    )
