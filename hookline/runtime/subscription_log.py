"""Writes subscriptions to the compacted `hookline.subscriptions` topic (tombstone = deleted).

Used by the admin API and by the deliverer when it disables a subscription; returns only once
Kafka acknowledged the write (acks=all).
"""

from __future__ import annotations

from confluent_kafka import Producer

from core.errors import HooklineError
from core.records import Subscription
from hookline.runtime.errors import ProduceFailed
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from schemas.records_avro import RecordCodec


class SubscriptionWriteError(HooklineError):
    def __init__(self, subscription_id: str, reason: str) -> None:
        super().__init__(f"subscription {subscription_id}: write failed: {reason}")
        self.subscription_id = subscription_id


class SubscriptionLog:
    def __init__(self, settings: Settings, codec: RecordCodec, *, client_id: str) -> None:
        self._topic = settings.topic("subscriptions")
        self._codec = codec
        self._producer = Producer(producer_config(settings, client_id=client_id, linger_ms=0))

    def put(self, subscription: Subscription, *, timeout_s: float = 30.0) -> None:
        self._write(subscription.id, self._codec.encode_subscription(subscription), timeout_s)

    def delete(self, subscription_id: str, *, timeout_s: float = 30.0) -> None:
        self._write(subscription_id, None, timeout_s)

    def _write(self, key: str, value: bytes | None, timeout_s: float) -> None:
        try:
            Acks(self._producer, timeout_s=timeout_s).write(self._topic, key=key, value=value)
        except ProduceFailed as exc:
            raise SubscriptionWriteError(key, exc.reason) from exc

    def close(self) -> None:
        self._producer.flush(10)
