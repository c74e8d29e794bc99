"""The delivery command for an event and a subscription: built one way everywhere.

The router, the replayer and the API's test ping all make commands; they differ only in
origin and job, never in the body or the delivery id. A command carries its event's trace
context, so each of its attempts joins the event's trace.
"""

from __future__ import annotations

from datetime import datetime

from core.ids import delivery_id
from core.records import DeliveryCommand, DeliveryOrigin, DomainEvent
from core.webhook import render_body


def event_body(event: DomainEvent) -> bytes:
    """The exact webhook body of `event`; render once and share it across its commands."""
    return render_body(
        type=event.type,
        occurred_at=event.occurred_at,
        tenant=event.tenant,
        subject={"type": event.subject.type, "id": event.subject.id},
        actor=None if event.actor is None else {"type": event.actor.type, "id": event.actor.id},
        data=event.data,
        changes=event.changes,
    )


def new_command(
    event: DomainEvent,
    subscription_id: str,
    *,
    payload: bytes,
    now: datetime,
    origin: DeliveryOrigin = "route",
    job_id: str | None = None,
) -> DeliveryCommand:
    """A first-attempt command; the delivery id is derived from (event id, subscription id)."""
    return DeliveryCommand(
        delivery_id=delivery_id(event.id, subscription_id),
        event_id=event.id,
        event_type=event.type,
        tenant=event.tenant,
        subscription_id=subscription_id,
        occurred_at=event.occurred_at,
        payload=payload,
        attempt=0,
        created_at=now,
        not_before=None,
        origin=origin,
        job_id=job_id,
        last_error=None,
        trace=event.trace,
        tracestate=event.tracestate,
    )
