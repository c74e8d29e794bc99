"""Publishing domain events to `hookline.events`: a blocking and an asyncio publisher.

Both validate the event against the latest version of its type's schema before anything is
sent (a bad payload raises `InvalidEvent` naming the field, and nothing reaches Kafka) and
write it with that version's schema; the catalog follows the `event-types` topic, so a type
or version registered while the publisher runs is used at once. They key it by its subject id,
and report success only once Kafka acknowledged it (acks=all, idempotent producer). One
background thread serves the producer's delivery callbacks; `close()` flushes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self, TypeAlias

from confluent_kafka import Producer
from opentelemetry.trace import SpanKind

from core.json_value import JsonValue
from core.records import DomainEvent, Ref, trace_of, with_trace
from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.errors import ProduceFailed, ProduceTimeout, TableError
from hookline.runtime.kafka import bootstrap_servers, producer_config
from hookline.runtime.producing import PolledProducer
from hookline.runtime.settings import Settings
from hookline.runtime.tracing import child_span, context_of, current_trace, tracer
from producers.errors import (
    InvalidEvent,
    PublisherClosed,
    PublisherUnavailable,
    PublishFailed,
    PublishTimeout,
    UnknownType,
)
from schemas.errors import InvalidEventData, SchemaStoreError, UnknownEventType
from schemas.records_avro import RecordCodec

RefLike: TypeAlias = Ref | Mapping[str, str] | tuple[str, str]
"""A subject or actor: a `Ref`, `{"type": ..., "id": ...}` or `(type, id)`."""

DEFAULT_TENANT: Final = "default"
DEFAULT_TIMEOUT_S: Final = 30.0


def _ref(value: RefLike, *, event_type: str, field: str) -> Ref:
    match value:
        case Ref():
            ref = value
        case (str() as ref_type, str() as ref_id):
            ref = Ref(ref_type, ref_id)
        case Mapping() if isinstance(value.get("type"), str) and isinstance(value.get("id"), str):
            ref = Ref(value["type"], value["id"])
        case _:
            raise InvalidEvent(event_type, field, "expected a Ref, {'type', 'id'} or (type, id)")
    if not ref.type or not ref.id:
        raise InvalidEvent(event_type, field, "type and id must not be empty")
    return ref


def build_event(
    event_type: str,
    *,
    subject: RefLike,
    data: Mapping[str, JsonValue],
    actor: RefLike | None = None,
    tenant: str = DEFAULT_TENANT,
    changes: Mapping[str, JsonValue] | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    trace: str | None = None,
) -> DomainEvent:
    """The event a publish call describes; a fresh UUID and now unless given."""
    if not tenant:
        raise InvalidEvent(event_type, "tenant", "must not be empty")
    return DomainEvent(
        id=event_id if event_id is not None else str(uuid.uuid4()),
        type=event_type,
        tenant=tenant,
        occurred_at=occurred_at if occurred_at is not None else datetime.now(UTC),
        subject=_ref(subject, event_type=event_type, field="subject"),
        actor=None if actor is None else _ref(actor, event_type=event_type, field="actor"),
        data=data,
        changes=changes,
        trace=trace,
    )


def encode_event(codec: RecordCodec, event: DomainEvent) -> bytes:
    """The event's Avro bytes; `InvalidEvent` / `UnknownType` when it breaks its schema."""
    try:
        return codec.encode_event(event)
    except InvalidEventData as exc:
        raise InvalidEvent(exc.event_type, exc.field, exc.reason) from exc
    except UnknownEventType as exc:
        raise UnknownType(exc.event_type) from exc


def _publish_error(event_id: str, error: ProduceFailed) -> PublishFailed:
    if isinstance(error, ProduceTimeout):
        return PublishTimeout(event_id, error.topic, error.timeout_s)
    return PublishFailed(event_id, error.topic, error.reason)


class _Sender:
    """The one implementation both publishers drive: encode, then the runtime's
    `PolledProducer` sends and serves the acknowledgements."""

    def __init__(
        self, settings: Settings, *, client_id: str, codec: RecordCodec | None, linger_ms: int
    ) -> None:
        bootstrap_servers(settings)  # unset: one line naming HOOKLINE_KAFKA_BOOTSTRAP
        self._runtime: CodecRuntime | None = None
        if codec is None:
            try:
                self._runtime = open_codec(settings, client_id=client_id, follow_catalog=True)
            except (SchemaStoreError, TableError) as exc:
                # the reason says it all ("the topic is missing; run 'hookline topics
                # ensure'"): the chain of Kafka frames under it would only bury that line
                raise PublisherUnavailable(str(exc)) from None
            codec = self._runtime.codec
        self.codec = codec
        self.topic = settings.topic("events")
        self._producer = PolledProducer(
            Producer(producer_config(settings, client_id=client_id, linger_ms=linger_ms)),
            name=client_id,
        )
        self._closed = threading.Event()

    @contextmanager
    def span(self, event: DomainEvent) -> Iterator[DomainEvent]:
        """The publish span, a child of the event's `trace` or else of the caller's current
        span; yields the event carrying the span's context, so its trace runs on from here."""
        with child_span(
            tracer("hookline.producers"),
            f"publish {event.type}",
            trace_of(event) or current_trace(),
            kind=SpanKind.PRODUCER,
            attributes={"hookline.event_id": event.id, "hookline.tenant": event.tenant},
        ) as span:
            yield with_trace(event, context_of(span))

    def prepare(self, event: DomainEvent) -> bytes:
        if self._closed.is_set():
            raise PublisherClosed
        return encode_event(self.codec, event)

    def submit(
        self, event: DomainEvent, value: bytes, timeout_s: float
    ) -> concurrent.futures.Future[str]:
        """Queue the event; the future holds its id once acknowledged, or a PublishFailed."""
        if self._closed.is_set():
            raise PublisherClosed
        try:
            acked = self._producer.submit(
                self.topic, key=event.subject.id, value=value, timeout_s=timeout_s
            )
        except ProduceFailed as exc:
            raise _publish_error(event.id, exc) from exc
        published: concurrent.futures.Future[str] = concurrent.futures.Future()

        def settle(done: concurrent.futures.Future[None]) -> None:
            error = done.exception()
            try:
                if error is None:
                    published.set_result(event.id)
                else:
                    assert isinstance(error, ProduceFailed)
                    published.set_exception(_publish_error(event.id, error))
            except concurrent.futures.InvalidStateError:  # cancelled by the caller
                pass

        acked.add_done_callback(settle)
        return published

    async def send(self, event: DomainEvent, value: bytes, timeout_s: float) -> str:
        if self._closed.is_set():
            raise PublisherClosed
        try:
            await self._producer.send(
                self.topic, key=event.subject.id, value=value, timeout_s=timeout_s
            )
        except ProduceFailed as exc:
            raise _publish_error(event.id, exc) from exc
        return event.id

    def flush(self, timeout_s: float) -> int:
        """Wait for every queued event's acknowledgement; returns how many are still unsent."""
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float) -> int:
        if self._closed.is_set():
            return 0
        self._closed.set()
        unsent = self._producer.close(timeout_s)
        if self._runtime is not None:
            self._runtime.close()
        return unsent


class Publisher:
    """Blocking publisher: `publish()` returns the event id once Kafka acknowledged it.

    Thread-safe. `submit()` returns a `concurrent.futures.Future` instead, for callers that
    publish many events and wait for them together.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        codec: RecordCodec | None = None,
        linger_ms: int = 0,
    ) -> None:
        self._sender = _Sender(settings, client_id=client_id, codec=codec, linger_ms=linger_ms)

    @property
    def codec(self) -> RecordCodec:
        """The codec it validates with (its catalog follows the `event-types` topic): pass it
        to `write_outbox` to write the same types."""
        return self._sender.codec

    def submit(
        self,
        type: str,
        *,
        subject: RefLike,
        data: Mapping[str, JsonValue],
        actor: RefLike | None = None,
        tenant: str = DEFAULT_TENANT,
        changes: Mapping[str, JsonValue] | None = None,
        id: str | None = None,
        occurred_at: datetime | None = None,
        trace: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> concurrent.futures.Future[str]:
        """Validate and queue; the future holds the event id or a `PublishFailed`."""
        event = build_event(
            type,
            subject=subject,
            data=data,
            actor=actor,
            tenant=tenant,
            changes=changes,
            event_id=id,
            occurred_at=occurred_at,
            trace=trace,
        )
        with self._sender.span(event) as traced:
            value = self._sender.prepare(traced)
            return self._sender.submit(traced, value, timeout_s)

    def publish(
        self,
        type: str,
        *,
        subject: RefLike,
        data: Mapping[str, JsonValue],
        actor: RefLike | None = None,
        tenant: str = DEFAULT_TENANT,
        changes: Mapping[str, JsonValue] | None = None,
        id: str | None = None,
        occurred_at: datetime | None = None,
        trace: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> str:
        """Publish one event and return its id once Kafka acknowledged it."""
        started = time.monotonic()
        event_id = id if id is not None else str(uuid.uuid4())
        future = self.submit(
            type,
            subject=subject,
            data=data,
            actor=actor,
            tenant=tenant,
            changes=changes,
            id=event_id,
            occurred_at=occurred_at,
            trace=trace,
            timeout_s=timeout_s,
        )
        remaining = max(0.0, timeout_s - (time.monotonic() - started))
        try:
            return future.result(remaining)
        except concurrent.futures.TimeoutError:
            raise PublishTimeout(event_id, self._sender.topic, timeout_s) from None

    def flush(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        return self._sender.flush(timeout_s)

    def close(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Flush what is queued (up to `timeout_s`) and release the clients."""
        self._sender.close(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncPublisher:
    """asyncio publisher: `await publish(...)` returns the event id once Kafka acknowledged it.

    The acknowledgement arrives on the poll thread and is handed to the caller's event loop
    with `call_soon_threadsafe`, so any loop (an aiohttp app's included) can await it.
    Build it with `await AsyncPublisher.open(...)` inside a running loop (its set-up blocks).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        codec: RecordCodec | None = None,
        linger_ms: int = 5,
    ) -> None:
        self._sender = _Sender(settings, client_id=client_id, codec=codec, linger_ms=linger_ms)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        client_id: str,
        codec: RecordCodec | None = None,
        linger_ms: int = 5,
    ) -> AsyncPublisher:
        """Build one without blocking the running loop (the codec reads the schemas topic)."""
        return await asyncio.to_thread(
            cls, settings, client_id=client_id, codec=codec, linger_ms=linger_ms
        )

    async def publish(
        self,
        type: str,
        *,
        subject: RefLike,
        data: Mapping[str, JsonValue],
        actor: RefLike | None = None,
        tenant: str = DEFAULT_TENANT,
        changes: Mapping[str, JsonValue] | None = None,
        id: str | None = None,
        occurred_at: datetime | None = None,
        trace: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> str:
        """Validate, send, and return the event id once Kafka acknowledged it."""
        event = build_event(
            type,
            subject=subject,
            data=data,
            actor=actor,
            tenant=tenant,
            changes=changes,
            event_id=id,
            occurred_at=occurred_at,
            trace=trace,
        )
        with self._sender.span(event) as traced:
            value = self._sender.prepare(traced)
            return await self._sender.send(traced, value, timeout_s)

    async def flush(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        return await asyncio.to_thread(self._sender.flush, timeout_s)

    async def aclose(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Flush (in a worker thread, so the loop keeps running) and release the clients."""
        await asyncio.to_thread(self._sender.close, timeout_s)

    def close(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._sender.close(timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()
