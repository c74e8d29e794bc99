"""The end-to-end benchmark's events: task.created, one tenant per subscription, paced or not."""

from __future__ import annotations

import time

from confluent_kafka import Producer

from bench.e2e_stats import Published
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import produce_within
from hookline.runtime.settings import Settings
from producers.publisher import build_event, encode_event
from schemas.records_avro import RecordCodec


class EventSource:
    """Publishes task.created events, round-robin over the subscriptions' tenants."""

    def __init__(self, settings: Settings, codec: RecordCodec, subscriptions: int) -> None:
        self._codec = codec
        self._subscriptions = subscriptions
        self._topic = settings.topic("events")
        self._producer = Producer(
            producer_config(settings, client_id="bench-e2e-events", linger_ms=5)
        )
        self._n = 0
        self._bursts = 0

    def publish(self, count: int, rate: float | None) -> Published:
        """`count` events, paced at `rate` events/s (open model) or as fast as possible."""
        ids, subs = [], []
        started_s, started = time.time(), time.perf_counter()
        for k in range(count):
            if rate:
                ahead_s = started + k / rate - time.perf_counter()
                if ahead_s > 0:
                    time.sleep(ahead_s)
            n, self._n = self._n, self._n + 1
            sub = n % self._subscriptions
            ids.append(self._produce(f"t{n}", sub))
            subs.append(sub)
        self._flush()
        return Published(ids, subs, started_s, time.perf_counter() - started)

    def burst(self, count: int, sub: int) -> Published:
        """`count` events to subscription `sub`'s tenant as fast as possible; the round-robin
        of `publish` goes on where it was."""
        started_s, started = time.time(), time.perf_counter()
        ids = []
        for _ in range(count):
            n, self._bursts = self._bursts, self._bursts + 1
            ids.append(self._produce(f"b{n}", sub))
        self._flush()
        return Published(ids, [sub] * count, started_s, time.perf_counter() - started)

    def _produce(self, task_id: str, sub: int) -> str:
        event = build_event(
            "task.created",
            subject=("task", task_id),
            data={"id": task_id, "title": "bench", "project_id": "p1", "assignee_id": None},
            tenant=f"t{sub}",
        )
        value = encode_event(self._codec, event)
        produce_within(self._producer, self._topic, key=event.subject.id, value=value, poll_s=0.01)
        self._producer.poll(0)
        return event.id

    def _flush(self) -> None:
        if self._producer.flush(60) != 0:
            raise RuntimeError("events not acknowledged in 60 s")

    def close(self) -> None:
        self._producer.flush(10)
