"""Producing with acknowledgement: the one way hookline writes a record something depends on.

One rule, several faces: a record counts once Kafka acknowledged it (acks=all), and a
record it refuses is an error the caller sees, never a line in a log.

- `produce_within` queues one record. While librdkafka's local queue is full (BufferError)
  it serves delivery callbacks with `poll` and tries again, until a deadline, then raises
  ProduceTimeout. Only that: a KafkaException from `produce()` passes unchanged, so a
  transactional caller still reads `fatal()` / `txn_requires_abort()` from it (polling a
  transactional producer is what librdkafka expects while its queue drains).
- `Acks` (blocking): records produced as one step and waited for together; `wait()` raises
  ProduceFailed naming the first refusal, or ProduceTimeout. Each step has its own `Acks`,
  so two threads sharing a producer never see each other's refusals.
- `PolledProducer` (one record at a time): a thread serves the callbacks; `submit()` gives a
  `concurrent.futures.Future`, `await send()` an asyncio future settled on the caller's loop.
- `acked_future` is that asyncio bridge alone, for a loop that polls its producer itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeAlias

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hookline.runtime.errors import KafkaAuthenticationFailed, ProduceFailed, ProduceTimeout
from hookline.runtime.kafka import LIBRDKAFKA_LOGGER

DEFAULT_TIMEOUT_S: Final = 30.0
QUEUE_FULL_POLL_S: Final = 0.05
"""How long one wait for the local queue to drain lasts before `produce` is tried again."""

Key: TypeAlias = str | bytes | None
Headers: TypeAlias = list[tuple[str, bytes]]
OnDelivery: TypeAlias = Callable[[KafkaError | None, Any], None]
"""A delivery callback: the error (None once acknowledged) and the message."""


class KafkaProducer(Protocol):
    """The part of confluent_kafka.Producer the services' shells use, as a port (fakes in
    tests); `on_delivery` callbacks run in `poll` and `flush`."""

    def produce(
        self,
        topic: str,
        *,
        key: str | bytes | None,
        value: bytes | None,
        on_delivery: OnDelivery,
        **extra: Any,
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def produce_within(
    producer: Producer,
    topic: str,
    *,
    key: Key,
    value: bytes | None,
    on_delivery: OnDelivery | None = None,
    partition: int | None = None,
    headers: Headers | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_s: float = QUEUE_FULL_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Queue one record, waiting (bounded by `timeout_s`) while the local queue is full."""
    extra: dict[str, object] = {}
    if on_delivery is not None:
        extra["on_delivery"] = on_delivery
    if partition is not None:
        extra["partition"] = partition
    if headers:
        extra["headers"] = headers
    deadline = clock() + timeout_s
    while True:
        try:
            producer.produce(topic, key=key, value=value, **extra)
        except BufferError:
            if clock() >= deadline:
                raise ProduceTimeout(topic, timeout_s, "room in the local queue") from None
            producer.poll(poll_s)  # serves acknowledgements, which free the queue
        else:
            return


class Acks:
    """Records produced as one step, acknowledged together before the step moves on."""

    def __init__(self, producer: Producer, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._refused: list[tuple[str, KafkaError]] = []

    def produce(
        self,
        topic: str,
        *,
        key: Key,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record of the step; ProduceFailed when the client refuses it at once."""

        def delivered(error: KafkaError | None, _message: Message) -> None:
            with self._lock:
                self._pending[topic] -= 1
                if error is not None:
                    self._refused.append((topic, error))

        with self._lock:
            self._pending[topic] += 1
        try:
            produce_within(
                self._producer,
                topic,
                key=key,
                value=value,
                on_delivery=delivered,
                partition=partition,
                headers=headers,
                timeout_s=self._timeout_s,
            )
        except KafkaException as exc:  # e.g. a record over message.max.bytes
            with self._lock:
                self._pending[topic] -= 1
            raise ProduceFailed(topic, exc.args[0].str()) from exc
        except ProduceTimeout:
            with self._lock:
                self._pending[topic] -= 1
            raise

    def wait(self) -> None:
        """Return once every record is acknowledged; ProduceFailed / ProduceTimeout if not."""
        with self._lock:
            pending = self._pending.total()
        if pending:
            self._producer.flush(self._timeout_s)
        with self._lock:
            if self._refused:
                topic, error = self._refused[0]
                raise ProduceFailed(topic, error.str())
            for topic, count in self._pending.items():
                if count:
                    raise ProduceTimeout(topic, self._timeout_s, f"{count} acknowledgements")

    def write(self, topic: str, *, key: Key, value: bytes | None) -> None:
        """One record, produced and acknowledged."""
        self.produce(topic, key=key, value=value)
        self.wait()


def acked_future(
    loop: asyncio.AbstractEventLoop, topic: str
) -> tuple[asyncio.Future[None], OnDelivery]:
    """A future of `loop` and the delivery callback that settles it, from any thread."""
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: KafkaError | None) -> None:
        if future.done():  # the caller timed out or was cancelled
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(ProduceFailed(topic, error.str()))

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, error)

    return future, delivered


def _expire(future: asyncio.Future[None], topic: str, timeout_s: float) -> None:
    if not future.done():  # an acknowledgement that comes later is dropped by `settle`
        future.set_exception(ProduceTimeout(topic, timeout_s, "the acknowledgement"))


class PolledProducer:
    """A producer whose delivery callbacks a thread of its own serves, for callers that wait
    on each record: a blocking one through `submit`, an asyncio one through `send`."""

    def __init__(self, producer: Producer, *, name: str) -> None:
        self.producer = producer
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"{name}-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            try:
                self.producer.poll(0.1)
            except KafkaAuthenticationFailed as exc:
                # the thread keeps serving delivery reports, so each record waiting on it
                # still ends (failed, or timed out) rather than hanging with a dead thread
                LIBRDKAFKA_LOGGER.error("%s", exc)

    def submit(
        self, topic: str, *, key: Key, value: bytes | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> concurrent.futures.Future[None]:
        """Queue one record; the future ends once it is acknowledged, or with ProduceFailed."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def delivered(error: KafkaError | None, _message: Message) -> None:
            try:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(ProduceFailed(topic, error.str()))
            except concurrent.futures.InvalidStateError:  # cancelled by the caller
                pass

        try:
            produce_within(
                self.producer,
                topic,
                key=key,
                value=value,
                on_delivery=delivered,
                timeout_s=timeout_s,
            )
        except KafkaException as exc:
            raise ProduceFailed(topic, exc.args[0].str()) from exc
        return future

    async def send(
        self, topic: str, *, key: Key, value: bytes | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Produce one record and return once it is acknowledged (the loop never blocks)."""
        loop = asyncio.get_running_loop()
        future, delivered = acked_future(loop, topic)
        deadline = loop.time() + timeout_s
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
            except BufferError:  # the poll thread drains the queue meanwhile
                if loop.time() >= deadline:
                    raise ProduceTimeout(topic, timeout_s, "room in the local queue") from None
                await asyncio.sleep(QUEUE_FULL_POLL_S / 10)
            except KafkaException as exc:
                raise ProduceFailed(topic, exc.args[0].str()) from exc
            else:
                break
        # one timer that ends the future itself: `asyncio.wait_for` adds a second future and
        # a callback, one more turn of the loop for every record acknowledged
        expiry = loop.call_at(deadline, _expire, future, topic, timeout_s)
        try:
            await future
        finally:
            expiry.cancel()

    def flush(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Wait for every queued record's acknowledgement; returns how many are still unsent."""
        return int(self.producer.flush(timeout_s))

    def close(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Stop the poll thread and flush; returns how many records are still unsent."""
        if self._closed.is_set():
            return 0
        self._closed.set()
        self._poller.join()
        return self.flush(timeout_s)
