"""The domain records hookline passes between its services, as frozen values with no I/O.

Every Kafka topic carries one of these; `schemas.records_avro` maps them to and from Avro.
The wide records are built by keyword. A field has a default exactly where its Avro schema
has one (a reader of an older record gets the same value); an attempt and a dead letter
have none, since each of their fields says what happened and must be stated, save what
older attempts lack: the trace context, the origin and the request/response log.
`trace` and `tracestate` are the W3C trace context (`traceparent` and `tracestate` header
values) an event, its commands and their attempts carry, so one trace spans the pipeline.
Datetimes are timezone-aware UTC with millisecond precision (the Avro `timestamp-millis`
resolution), so a record survives an encode/decode round trip unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from core.filters import EMPTY_FILTER, Filter
from core.json_value import JsonValue


def utc_ms(moment: datetime) -> datetime:
    """`moment` in UTC truncated to whole milliseconds; refuses naive datetimes."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no timezone")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def epoch_ms(moment: datetime) -> int:
    """`moment` as whole milliseconds since the epoch: how due and creation times are kept."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Ref:
    """A typed reference to an entity: the event's subject or its actor."""

    type: str
    id: str


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A W3C trace context as the records carry it: the `traceparent` and `tracestate` header
    values (the state is optional and only ever travels with a parent)."""

    traceparent: str
    tracestate: str | None = None


def trace_of(record: DomainEvent | DeliveryCommand) -> TraceContext | None:
    """The trace context an event or a command carries, if any."""
    if record.trace is None:
        return None
    return TraceContext(record.trace, record.tracestate)


def with_trace(event: DomainEvent, context: TraceContext | None) -> DomainEvent:
    """`event` carrying `context` instead of its own (the span that published or routed it)."""
    if context is None:
        return dataclasses.replace(event, trace=None, tracestate=None)
    return dataclasses.replace(event, trace=context.traceparent, tracestate=context.tracestate)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """One thing that happened, carrying the entity's full state in `data` (JSON-ready).

    `id` is a UUID in text form and the idempotency key (`webhook-id`); `type` is `noun.verb`;
    `data` follows the type's schema, with timestamps as RFC 3339 strings.
    """

    id: str
    type: str
    tenant: str
    occurred_at: datetime
    subject: Ref
    actor: Ref | None = None
    data: Mapping[str, JsonValue]
    changes: Mapping[str, JsonValue] | None = None
    trace: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """A signing secret encrypted at rest: AES-GCM nonce + ciphertext of `whsec_...`.

    `expires_at` is None for the current secret, set for the previous one during rotation.
    """

    ciphertext: bytes
    expires_at: datetime | None


SubscriptionStatus = Literal["active", "paused", "disabled"]
ContentType = Literal["application/json", "application/x-www-form-urlencoded"]
"""How a subscription's webhooks are encoded: the JSON body as is, or (as GitHub offers) a
form whose one field `payload` holds it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """An endpoint's wish to receive some event types; a tombstone on the topic deletes it.

    Custom header values are sealed at rest like the signing secrets (`sealed_headers`, name
    -> AES-GCM nonce + ciphertext). `headers` holds clear values only in records written
    before that; the API seals them on the subscription's next write. `content_type` says
    how the deliverer encodes the body it sends (`core.webhook.encode_body`).

    `disabled_reason` and `disabled_at` say why and when the deliverer disabled it, and
    `paused_at` when it was paused; each is None outside that status.
    """

    id: str
    tenant: str
    url: str
    event_types: tuple[str, ...]
    filter: Filter = EMPTY_FILTER
    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    sealed_headers: Mapping[str, bytes] = field(default_factory=dict)
    rate_limit: float | None = None
    ordered: bool = False
    status: SubscriptionStatus = "active"
    created_at: datetime
    updated_at: datetime
    version: int = 1
    secrets: tuple[StoredSecret, ...] = ()
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    paused_at: datetime | None = None
    content_type: ContentType = "application/json"


DeliveryOrigin = Literal["route", "replay", "recover", "redeliver", "test"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryCommand:
    """One event to send to one subscription; `payload` is the exact JSON body to POST.

    `attempt` counts the attempts already made (0 for a new delivery); `not_before` holds a
    retry back until its time. `prior_attempts` is how many attempts the history held for
    this delivery when it was sent again (redeliver, recover): its attempts are numbered on
    from there, while the retry schedule counts `attempt` alone, so a redelivery gets its
    full schedule.
    """

    delivery_id: str
    event_id: str
    event_type: str
    tenant: str
    subscription_id: str
    occurred_at: datetime
    payload: bytes
    attempt: int = 0
    created_at: datetime
    not_before: datetime | None = None
    origin: DeliveryOrigin = "route"
    job_id: str | None = None
    last_error: str | None = None
    trace: str | None = None
    tracestate: str | None = None
    prior_attempts: int = 0


AttemptOutcome = Literal["delivered", "retrying", "dead", "failed"]


AttemptOrigin = Literal[DeliveryOrigin, "retry"]
"""Why an attempt was made: its command's origin for the first attempt of a command, `retry`
for the scheduled retries that follow it."""


@dataclass(frozen=True, slots=True)
class Timings:
    """The phases of one HTTP attempt in milliseconds, as curl names them: `dns_ms` the name
    lookup, `connect_ms` the TCP (and TLS) connect, `ttfb_ms` from the start of the attempt to
    the response's head. None when the phase did not happen: no lookup for an IP literal or a
    cached name, no connect on a pooled connection, no head when nothing answered."""

    dns_ms: int | None = None
    connect_ms: int | None = None
    ttfb_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """The outcome of one HTTP attempt; `status_code` is None when no response came back.

    The request as sent (`request_headers` with every signature and custom header value
    redacted, `request_body` up to a bound) and the response's headers (bounded) make the
    attempt's log; records written before these fields read them empty, and `origin` None.
    """

    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    tenant: str
    attempt: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None
    outcome: AttemptOutcome
    next_attempt_at: datetime | None
    trace: str | None = None
    tracestate: str | None = None
    origin: AttemptOrigin | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: str | None = None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A delivery that ran out of attempts, or a record that could not be decoded.

    `command` is set for exhausted deliveries; `raw_value` for undecodable records. The
    source coordinates say where the record was read from.
    """

    id: str
    reason: str
    at: datetime
    subscription_id: str | None
    command: DeliveryCommand | None
    source_topic: str
    source_partition: int
    source_offset: int
    raw_value: bytes | None
    error: str | None


JobKind = Literal["replay", "recover", "redeliver"]
JobStatus = Literal["running", "done", "failed", "cancelled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A replay, recover or redeliver job and its progress, keyed by id on `hookline.control`."""

    id: str
    kind: JobKind
    tenant: str
    subscription_id: str | None = None
    delivery_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    status: JobStatus = "running"
    scanned: int = 0
    emitted: int = 0
    error: str | None = None
    created_at: datetime
    updated_at: datetime


TokenScope = Literal["read", "write", "publish"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A tenant's API token, keyed by id on `hookline.tokens`; only its SHA-256 is kept.

    `scopes` say what it may do (`read`, `write`, `publish`); it is refused from `expires_at`
    on (None: never expires) and from `revoked_at` on (None: not revoked). A revoked token
    stays revoked: its last record on the compacted topic says so for as long as the topic
    lives, so nothing written later brings it back.
    """

    id: str
    token_hash: str
    tenant: str
    scopes: tuple[TokenScope, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
