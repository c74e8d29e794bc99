"""Handlers of events, health, readiness, metrics and the document."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from aiohttp import web
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.http.context import (
    ACCEPT_TO_ACK,
    INGEST_ADMISSION,
    JSON,
    PUBLISH_LIMITER,
    REGISTRY,
    answer,
    bodies,
    caller,
    read_json,
    resources,
    settings,
    spec,
)
from api.model.errors import EventIdTaken, InvalidInput, Unavailable
from api.model.published import claim, mark_sent
from core.event_dedupe import PublishedContent, content_digest, judge_republish
from core.json_value import JsonValue
from core.matching import PLATFORM_PREFIX, is_platform_type
from core.records import DomainEvent, Ref, TraceContext, utc_ms, with_trace
from hookline.runtime.tracing import child_span, context_of, tracer
from schemas.errors import InvalidEventData, UnknownEventType

CHECK_TIMEOUT_S: Final = 2.0
_ENVELOPE_FIELDS: Final = frozenset({"id", "occurred_at"})


async def publish(request: web.Request) -> web.Response:
    """One event, validated against its type's schema; 202 once Kafka acknowledged it; 429
    when its tenant publishes faster than its rate (`quota-exceeded`), or when delivery lags
    too far behind to take it now (`ingest-overloaded`).

    The `webhook.*` types are the platform's own (the test ping): a tenant token may not
    publish them (422 naming `type`, like any other value its rules refuse); the admin may.
    """
    started = time.perf_counter()
    who = await caller(request)
    spec = bodies(request)
    e = spec.event
    parsed = spec.publish_event.parse(await read_json(request))
    tenant = who.tenant_for_write(parsed.get_or(e.tenant, None))
    event_type = parsed.get(e.type)
    if who.tenant is not None and is_platform_type(event_type):
        raise InvalidInput.one(
            e.type.name, f"{event_type!r}: the {PLATFORM_PREFIX}* types are the platform's own"
        )
    request.app[PUBLISH_LIMITER].admit(tenant)
    request.app[INGEST_ADMISSION].admit(tenant)
    subject = parsed.get(e.subject)
    actor = parsed.get_or(e.actor, None)
    data: dict[str, JsonValue] = parsed.get(e.data)
    content = PublishedContent(
        type=event_type,
        tenant=tenant,
        occurred_at=parsed.get_or(e.occurred_at, None),
        subject=Ref(subject.type, subject.id),
        actor=None if actor is None else Ref(actor.type, actor.id),
        data=data,
        changes=parsed.get_or(e.changes, None),
    )
    given_id: str | None = parsed.get_or(e.id, None)
    event = DomainEvent(
        id=given_id or str(uuid.uuid4()),
        type=event_type,
        tenant=tenant,
        occurred_at=content.occurred_at or utc_ms(datetime.now(UTC)),
        subject=content.subject,
        actor=content.actor,
        data=data,
        changes=content.changes,
    )
    given = parsed.get_or(e.trace, None)
    parent = None if given is None else TraceContext(given, parsed.get_or(e.tracestate, None))
    with child_span(
        tracer("hookline.api"),
        f"publish {event.type}",
        parent,
        kind=SpanKind.PRODUCER,
        attributes={"hookline.event_id": event.id, "hookline.tenant": tenant},
    ) as span:
        traced = with_trace(event, context_of(span))
        answered = await _send(request, traced, None if given_id is None else content)
    request.app[ACCEPT_TO_ACK].observe(time.perf_counter() - started)
    return answered


async def _send(
    request: web.Request, event: DomainEvent, content: PublishedContent | None
) -> web.Response:
    """Encode and send `event`; 202 once Kafka acknowledged it. An id the caller gave is
    judged against the window's record first (`content`: what the caller sent): the same
    content already sent is answered 202 without a second event, other content 409."""
    res = resources(request)
    value = _encoded(request, event)
    # a given id is answered in its canonical form (the codec checked it is a UUID); one
    # made here by `uuid4` is in that form already
    decoded_id = event.id if content is None else str(uuid.UUID(event.id))
    if content is not None:
        again = await _judged(request, event, content, decoded_id)
        if again is None:
            return answer({"id": decoded_id}, status=202)
        if again is not event:
            event, value = again, _encoded(request, again)
    await res.producer.send(settings(request).topic("events"), key=event.subject.id, value=value)
    if content is not None:
        await mark_sent(res.pool, tenant=event.tenant, event_id=decoded_id)
    return answer({"id": decoded_id}, status=202)


async def _judged(
    request: web.Request, event: DomainEvent, content: PublishedContent, event_id: str
) -> DomainEvent | None:
    """`event` to send (as first published, when it is a retry of a publish Kafka may not
    have taken), or None when it was sent already; EventIdTaken for other content."""
    window_s = settings(request).event_dedupe_window_s
    now = utc_ms(datetime.now(UTC))
    digest = content_digest(content)
    seen = await claim(
        resources(request).pool,
        tenant=event.tenant,
        event_id=event_id,
        digest=digest,
        occurred_at=event.occurred_at,
        now=now,
        window_start=now - timedelta(seconds=window_s),
    )
    if seen is None:
        return event
    match judge_republish(seen, digest):
        case "conflict":
            raise EventIdTaken(event_id, window_s=window_s)
        case "already-sent":
            return None
        case "send-again":
            return dataclasses.replace(event, occurred_at=seen.occurred_at)


def _encoded(request: web.Request, event: DomainEvent) -> bytes:
    """`event` as its Avro record; 422 naming the field its type's schema refuses."""
    try:
        return resources(request).codec.codec.encode_event(event)
    except UnknownEventType:
        raise InvalidInput.one("type", f"unknown event type {event.type!r}") from None
    except InvalidEventData as exc:
        where = (
            exc.field
            if exc.field in _ENVELOPE_FIELDS or exc.field == "data"
            else f"data.{exc.field}"
        )
        raise InvalidInput.one(where, exc.reason) from None


async def healthz(request: web.Request) -> web.Response:
    """200 while the process can work; a table whose reader stopped is never restarted, so
    503 names it: the process must be restarted."""
    res = resources(request)
    for name, table in (
        ("subscriptions", res.subscriptions),
        ("jobs", res.jobs),
        ("tokens", res.tokens),
        ("event types", res.event_types),
    ):
        if table.failure is not None:
            raise Unavailable(f"the {name} table stopped: {table.failure}")
    return answer({"status": "ok"})


async def _postgres_answers(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with resources(request).pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not reachable" here
        return False
    return True


async def readyz(request: web.Request) -> web.Response:
    """200 when the tables are caught up and Kafka and PostgreSQL answer; else 503."""
    res = resources(request)
    checks = {
        "subscriptions": res.subscriptions.ready,
        "jobs": res.jobs.ready,
        "tokens": res.tokens.ready,
        "event_types": res.event_types.ready,
        "postgres": await _postgres_answers(request),
        "kafka": await asyncio.to_thread(res.producer.reachable, CHECK_TIMEOUT_S),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": dict(checks)}
    return answer(body, status=200 if ready else 503)  # type: ignore[arg-type]


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(request.app[REGISTRY]), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=spec(request).document, content_type=JSON)
