"""Disabling a subscription (410 Gone, or no success for too long): the write and the event.

The deliverer writes the subscription back with status `disabled`, the reason and time (the
API shows them) and the next version, then publishes a `subscription.disabled` domain event
to `hookline.events`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from core.records import DomainEvent, Ref, Subscription, utc_ms
from deliverer.metrics import DelivererMetrics
from deliverer.ports import SubscriptionWriter
from schemas.records_avro import RecordCodec

Send = Callable[[str, str | None, bytes], Awaitable[None]]
Lookup = Callable[[str], Subscription | None]


class Disabler:
    def __init__(
        self,
        *,
        log: SubscriptionWriter,
        lookup: Lookup,
        codec: RecordCodec,
        send: Send,
        events_topic: str,
        metrics: DelivererMetrics,
    ) -> None:
        self._log = log
        self._lookup = lookup
        self._codec = codec
        self._send = send
        self._events_topic = events_topic
        self._metrics = metrics
        self._done: dict[str, int] = {}

    async def disable(self, subscription: Subscription, reason: str) -> None:
        """Disable once per version: concurrent 410s of one subscription write it once."""
        latest = self._lookup(subscription.id) or subscription
        if latest.status == "disabled" or self._done.get(latest.id, -1) >= latest.version:
            return
        self._done[latest.id] = latest.version
        now = datetime.now(UTC)
        disabled = dataclasses.replace(
            latest,
            status="disabled",
            version=latest.version + 1,
            updated_at=utc_ms(now),
            disabled_reason=reason,
            disabled_at=utc_ms(now),
            paused_at=None,
        )
        await asyncio.to_thread(self._log.put, disabled)
        event = DomainEvent(
            id=str(uuid.uuid4()),
            type="subscription.disabled",
            tenant=latest.tenant,
            occurred_at=utc_ms(now),
            subject=Ref("subscription", latest.id),
            actor=None,
            data={"subscription_id": latest.id, "reason": reason},
        )
        await self._send(self._events_topic, latest.id, self._codec.encode_event(event))
        self._metrics.disabled.inc()
