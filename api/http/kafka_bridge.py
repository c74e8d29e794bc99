"""An asyncio face on a confluent-kafka Producer: `await send(...)` returns once the broker
acknowledged the record (acks=all), so a 202 is only answered after Kafka has the event.

A thread serves the producer's delivery callbacks and hands each result to the event loop.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from api.model.errors import Unavailable
from hookline.runtime.kafka import producer_config
from hookline.runtime.settings import Settings


class AsyncProducer:
    def __init__(self, settings: Settings, *, client_id: str, linger_ms: int = 2) -> None:
        self._producer = Producer(
            producer_config(settings, client_id=client_id, linger_ms=linger_ms)
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{client_id}-poll", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    async def send(self, topic: str, *, key: str | None, value: bytes | None) -> None:
        """Produce one record and wait for its acknowledgement; Unavailable when refused."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: KafkaError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(Unavailable(f"Kafka refused the write: {error.str()}"))

        def delivered(error: KafkaError | None, _message: Message) -> None:
            loop.call_soon_threadsafe(settle, error)

        try:
            self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise Unavailable(f"cannot write to Kafka: {exc}") from exc
        await future

    def reachable(self, timeout_s: float) -> bool:
        """True when the cluster answers a metadata request (blocking: run it in a thread)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._producer.flush(10)
        self._stopping.set()
        self._thread.join(timeout=5)
