"""The API's producer: `await send(...)` returns once the broker acknowledged the record
(acks=all), so a 202 is only answered after Kafka has the event.

The runtime's `PolledProducer` does the work; this says what a refusal means to an HTTP
client (503) and bounds the wait, so a request never hangs on a broker that went away.
"""

from __future__ import annotations

from typing import Final

from confluent_kafka import KafkaException, Producer

from api.model.errors import Unavailable
from hookline.runtime.errors import ProduceFailed, ProduceTimeout
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import PolledProducer
from hookline.runtime.settings import Settings

SEND_TIMEOUT_S: Final = 30.0


class AsyncProducer:
    def __init__(self, producer: PolledProducer, *, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._producer = producer
        self._send_timeout_s = send_timeout_s

    @classmethod
    def open(cls, settings: Settings, *, client_id: str, linger_ms: int = 2) -> AsyncProducer:
        config = producer_config(settings, client_id=client_id, linger_ms=linger_ms)
        return cls(PolledProducer(Producer(config), name=client_id))

    async def send(self, topic: str, *, key: str | None, value: bytes | None) -> None:
        """Produce one record and wait for its acknowledgement; Unavailable when refused."""
        try:
            await self._producer.send(topic, key=key, value=value, timeout_s=self._send_timeout_s)
        except ProduceTimeout as exc:
            raise Unavailable(f"Kafka did not acknowledge the write: {exc}") from exc
        except ProduceFailed as exc:
            raise Unavailable(f"Kafka refused the write: {exc.reason}") from exc

    def reachable(self, timeout_s: float) -> bool:
        """True when the cluster answers a metadata request (blocking: run it in a thread)."""
        try:
            self._producer.producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._producer.close(10)
