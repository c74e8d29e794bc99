"""The request bodies and query parameters of the admin API, built once per app from the
event catalog and the address policy; handlers parse with them and the OpenAPI document is
generated from them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final, get_args

from api.http.fields import (
    Body,
    Field,
    JsonSchema,
    Kind,
    PathParam,
    QueryParam,
    array,
    boolean,
    integer,
    mapping,
    positive_number,
    query_int,
    query_text,
    query_timestamp,
    text,
    timestamp,
    unique,
)
from core import time_bounds
from core.addresses import IPNetwork
from core.delivery_status import STATUSES
from core.errors import InvalidField
from core.event_types import MAX_DESCRIPTION_CHARS as MAX_TYPE_DESCRIPTION_CHARS
from core.event_types import (
    MAX_EXAMPLES,
    MAX_NAME_CHARS,
    NAME_PATTERN,
    check_event_type_name,
)
from core.filters import Filter, parse_filter
from core.json_value import JsonValue
from core.matching import WILDCARD
from core.records import JobKind, JobStatus, SubscriptionStatus, TokenScope
from core.secret_rotation import DEFAULT_OVERLAP, MAX_OVERLAP
from core.subscription_rules import (
    MAX_DESCRIPTION_CHARS,
    MAX_EVENT_TYPES,
    MAX_HEADERS,
    MAX_URL_CHARS,
    check_description,
    check_event_types,
    check_headers,
    check_rate_limit,
    check_url,
)
from core.tokens import MAX_EXPIRES_IN_S, SCOPES, TENANT_PATTERN
from core.webhook import CONTENT_TYPES

ID_CHARS: Final = 200
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 100
TIMES: Final = "UTC " + time_bounds.RANGE


@dataclass(frozen=True, slots=True)
class RefValue:
    type: str
    id: str


def _ref_kind() -> Kind[RefValue]:
    part = text(max_chars=ID_CHARS, min_chars=1)

    def parse(value: object, path: str) -> RefValue:
        if not isinstance(value, dict):
            raise InvalidField(path, "expected an object with 'type' and 'id'")
        extra = sorted(set(value) - {"type", "id"})
        if extra:
            raise InvalidField(f"{path}.{extra[0]}", "unknown field")
        for key in ("type", "id"):
            if key not in value:
                raise InvalidField(f"{path}.{key}", "required field is missing")
        return RefValue(
            part.parse(value["type"], f"{path}.type"), part.parse(value["id"], f"{path}.id")
        )

    schema: JsonSchema = {
        "type": "object",
        "properties": {"type": part.schema, "id": part.schema},
        "required": ["type", "id"],
        "additionalProperties": False,
    }
    return Kind(schema, parse)


def _object_kind() -> Kind[dict[str, JsonValue]]:
    def parse(value: object, path: str) -> dict[str, JsonValue]:
        if not isinstance(value, dict):
            raise InvalidField(path, "expected an object")
        return value

    return Kind({"type": "object"}, parse)


def _filter_kind() -> Kind[Filter]:
    """A filter in the grammar of `core.filters`; whether it fits the subscription's event
    types is checked by the handler, which knows both."""

    def parse(value: object, path: str) -> Filter:
        if not isinstance(value, dict):
            raise InvalidField(path, "expected an object")
        return parse_filter(value)

    return Kind({"$ref": "#/components/schemas/Filter"}, parse)


def _examples_kind() -> Kind[list[JsonValue]]:
    """Examples as sent; each is checked against the schema it comes with
    (`schemas.event_types.check_examples`), which only the handler has parsed."""

    def parse(value: object, path: str) -> list[JsonValue]:
        if not isinstance(value, list):
            raise InvalidField(path, "expected an array of example data objects")
        return value

    return Kind({"type": "array", "items": {"type": "object"}, "maxItems": MAX_EXAMPLES}, parse)


def _scopes(names: tuple[str, ...]) -> tuple[TokenScope, ...]:
    """Names the enum already held to `SCOPES`, typed as scopes."""
    return tuple(scope for scope in SCOPES if scope in names)


def _subscription_status(name: str) -> SubscriptionStatus:
    """A name the enum already held to the statuses, typed as one."""
    return next(status for status in get_args(SubscriptionStatus) if status == name)


def patterns_enum(catalog: Collection[str]) -> list[str]:
    """Every accepted event-type entry: `*`, each `noun.*`, each exact name."""
    nouns = sorted({name.split(".", 1)[0] + ".*" for name in catalog})
    return [WILDCARD, *nouns, *sorted(catalog)]


@dataclass(frozen=True, slots=True)
class SubscriptionFields:
    url: Field[str]
    event_types: Field[tuple[str, ...]]
    filter: Field[Filter]
    headers: Field[dict[str, str]]
    description: Field[str]
    rate_limit: Field[float | None]
    ordered: Field[bool]
    status: Field[SubscriptionStatus]
    content_type: Field[str]
    tenant: Field[str]


@dataclass(frozen=True, slots=True)
class EventFields:
    id: Field[str]
    type: Field[str]
    tenant: Field[str]
    occurred_at: Field[datetime]
    subject: Field[RefValue]
    actor: Field[RefValue | None]
    data: Field[dict[str, JsonValue]]
    changes: Field[dict[str, JsonValue] | None]
    trace: Field[str | None]
    tracestate: Field[str | None]


@dataclass(frozen=True, slots=True)
class EventTypeFields:
    name: Field[str]
    description: Field[str]
    schema: Field[dict[str, JsonValue]]
    examples: Field[list[JsonValue]]
    deprecated: Field[bool]


@dataclass(frozen=True, slots=True)
class JobFields:
    since: Field[datetime]
    until: Field[datetime | None]
    event_types: Field[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class RotationFields:
    expire_previous_in_s: Field[int]


@dataclass(frozen=True, slots=True)
class TokenFields:
    expires_in_s: Field[int]
    scopes: Field[tuple[TokenScope, ...]]


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    subscription_id: QueryParam[str]
    event_id: QueryParam[str]
    event_type: QueryParam[str]
    status: QueryParam[str]
    since: QueryParam[datetime]
    until: QueryParam[datetime]


@dataclass(frozen=True, slots=True)
class JobListQuery:
    status: QueryParam[str]
    kind: QueryParam[str]


@dataclass(frozen=True, slots=True)
class PathParams:
    subscription_id: PathParam[str]
    job_id: PathParam[str]
    delivery_id: PathParam[str]
    token_id: PathParam[str]
    tenant: PathParam[str]
    event_type: PathParam[str]


@dataclass(frozen=True, slots=True)
class Bodies:
    """Everything a request may carry, by operation."""

    path: PathParams
    sub: SubscriptionFields
    create_subscription: Body
    update_subscription: Body
    event: EventFields
    publish_event: Body
    event_type: EventTypeFields
    create_event_type: Body
    new_event_type_version: Body
    update_event_type: Body
    job: JobFields
    replay: Body
    recover: Body
    rotation: RotationFields
    rotate_secret: Body
    token: TokenFields
    create_token: Body
    limit: QueryParam[int]
    cursor: QueryParam[str]
    deliveries: DeliveryQuery
    jobs: JobListQuery
    event_types: tuple[str, ...]

    @property
    def delivery_params(self) -> tuple[QueryParam[Any], ...]:
        q = self.deliveries
        return (q.subscription_id, q.event_id, q.event_type, q.status, q.since, q.until)

    @property
    def job_params(self) -> tuple[QueryParam[Any], ...]:
        return (self.jobs.status, self.jobs.kind)


def _exact_event_type(name: str) -> QueryParam[str]:
    """An event type named exactly: the history is looked up by name, so a pattern there
    would match nothing and answer an empty page as if no delivery were of that type."""
    kind = text(max_chars=ID_CHARS, min_chars=1)

    def parse(raw: str) -> str:
        if WILDCARD in raw:
            raise InvalidField(
                name, f"{raw!r}: patterns are not supported here; name one event type exactly"
            )
        return kind.parse(raw, name)

    return QueryParam(name, kind.schema, parse, "one event type, named exactly (no patterns)")


def build_bodies(catalog: Collection[str], allowed: Sequence[IPNetwork]) -> Bodies:
    enum = patterns_enum(catalog)
    pattern_list = array(text(enum=enum), max_items=MAX_EVENT_TYPES, min_items=1)
    tenant_kind = text(max_chars=64, min_chars=1, pattern=TENANT_PATTERN)
    sub = SubscriptionFields(
        url=Field(
            "url",
            text(max_chars=MAX_URL_CHARS, min_chars=1, pattern="^https?://").then(
                partial(check_url, allowed=allowed)
            ),
            description="the endpoint: an absolute https or http URL",
        ),
        event_types=Field(
            "event_types",
            pattern_list.then(partial(check_event_types, catalog=catalog)),
            description="exact names, `noun.*`, or `*`",
        ),
        filter=Field(
            "filter",
            _filter_kind(),
            description="which events of those types are sent: tests on `data`, `subject`"
            " and `actor` paths; each path must be a field of at least one of the types",
        ),
        headers=Field(
            "headers",
            mapping(text(max_chars=4096), max_fields=MAX_HEADERS).then(check_headers),
            description="custom headers sent with every request (not `webhook-*`)",
        ),
        description=Field(
            "description", text(max_chars=MAX_DESCRIPTION_CHARS).then(check_description)
        ),
        rate_limit=Field(
            "rate_limit",
            positive_number().nullable().then(check_rate_limit),
            description="requests per second; null for no limit",
        ),
        ordered=Field("ordered", boolean(), description="deliver strictly one at a time in order"),
        status=Field(
            "status",
            text(enum=get_args(SubscriptionStatus)).then(_subscription_status),
            description="`paused` holds deliveries back until `active` again, which sends"
            " the events published meanwhile; `disabled` drops them",
        ),
        content_type=Field(
            "content_type",
            text(enum=CONTENT_TYPES),
            description="how the body is sent: the JSON itself (default), or a form whose"
            " `payload` field holds it; the signature covers the bytes sent",
        ),
        tenant=Field("tenant", tenant_kind, description="admin token only; `default` if omitted"),
    )
    sub_fields = (
        sub.url,
        sub.event_types,
        sub.filter,
        sub.headers,
        sub.description,
        sub.rate_limit,
        sub.ordered,
        sub.status,
        sub.content_type,
    )
    create = Body(
        "SubscriptionCreate",
        (
            Field(sub.url.name, sub.url.kind, required=True, description=sub.url.description),
            Field(
                sub.event_types.name,
                sub.event_types.kind,
                required=True,
                description=sub.event_types.description,
            ),
            *sub_fields[2:],
            sub.tenant,
        ),
    )
    update = Body("SubscriptionUpdate", sub_fields, description="only the fields given change")
    ref = _ref_kind()
    event = EventFields(
        id=Field(
            "id",
            text(max_chars=36, min_chars=1),
            description="a UUID; generated if omitted. Given, it is the publish's idempotency"
            " key for `HOOKLINE_EVENT_DEDUPE_WINDOW_S` (24 h): the same content again is"
            " accepted without a second event, other content answers 409",
        ),
        type=Field("type", text(enum=sorted(catalog)), required=True),
        tenant=sub.tenant,
        occurred_at=Field("occurred_at", timestamp(), description="defaults to now; " + TIMES),
        subject=Field("subject", ref, required=True),
        actor=Field("actor", ref.nullable()),
        data=Field("data", _object_kind(), required=True, description="follows the type's schema"),
        changes=Field("changes", _object_kind().nullable()),
        trace=Field(
            "trace",
            text(max_chars=512).nullable(),
            description="W3C traceparent: the event's trace joins it (a malformed one is ignored)",
        ),
        tracestate=Field(
            "tracestate",
            text(max_chars=512).nullable(),
            description="W3C tracestate, carried with `trace`",
        ),
    )
    publish = Body(
        "EventPublish",
        (
            event.id,
            event.type,
            event.tenant,
            event.occurred_at,
            event.subject,
            event.actor,
            event.data,
            event.changes,
            event.trace,
            event.tracestate,
        ),
    )
    described = text(max_chars=MAX_TYPE_DESCRIPTION_CHARS)
    event_type = EventTypeFields(
        name=Field(
            "name",
            text(max_chars=MAX_NAME_CHARS, min_chars=1, pattern=NAME_PATTERN).then(
                check_event_type_name
            ),
            required=True,
            description="`noun.verb`: lowercase letters, digits, `_`; `webhook.*` is reserved",
        ),
        description=Field("description", described, required=True),
        schema=Field(
            "schema",
            _object_kind(),
            required=True,
            description="the Avro record schema of the events' `data`",
        ),
        examples=Field(
            "examples", _examples_kind(), description="`data` objects that fit the schema"
        ),
        deprecated=Field(
            "deprecated", boolean(), description="still accepted, but no longer recommended"
        ),
    )
    job = JobFields(
        since=Field("since", timestamp(), required=True, description=TIMES),
        until=Field(
            "until",
            timestamp().nullable(),
            description="defaults to the job's start; " + TIMES,
        ),
        event_types=Field(
            "event_types",
            pattern_list.then(partial(check_event_types, catalog=catalog)),
            description="limit the job to these types (within the subscription's)",
        ),
    )
    token = TokenFields(
        expires_in_s=Field(
            "expires_in_s",
            integer(minimum=1, maximum=MAX_EXPIRES_IN_S),
            description="seconds until the token expires (at most ten years); never if omitted",
        ),
        scopes=Field(
            "scopes",
            unique(array(text(enum=SCOPES), max_items=len(SCOPES), min_items=1)).then(_scopes),
            description="`read` (GETs), `write` (changes), `publish` (events); all if omitted",
        ),
    )
    rotation = RotationFields(
        expire_previous_in_s=Field(
            "expire_previous_in_s",
            integer(minimum=0, maximum=int(MAX_OVERLAP.total_seconds())),
            description=(
                "seconds the secret being replaced still signs (0: it stops now; at most 7"
                f" days; {int(DEFAULT_OVERLAP.total_seconds())} if omitted); secrets of earlier"
                " rotations keep their own expiry"
            ),
        )
    )
    status_enum = list(STATUSES)
    record_id = text(max_chars=ID_CHARS, min_chars=1)
    return Bodies(
        path=PathParams(
            subscription_id=PathParam("id", "subscription_id", record_id),
            job_id=PathParam("id", "job_id", record_id),
            delivery_id=PathParam("id", "delivery_id", record_id),
            token_id=PathParam("id", "token_id", record_id),
            tenant=PathParam("tenant", "tenant", tenant_kind),
            event_type=PathParam(
                "name", "name", text(max_chars=MAX_NAME_CHARS, min_chars=1, pattern=NAME_PATTERN)
            ),
        ),
        sub=sub,
        create_subscription=create,
        update_subscription=update,
        event=event,
        publish_event=publish,
        event_type=event_type,
        create_event_type=Body(
            "EventTypeCreate",
            (event_type.name, event_type.description, event_type.schema, event_type.examples),
        ),
        new_event_type_version=Body(
            "EventTypeVersionCreate",
            (
                Field(
                    "schema",
                    event_type.schema.kind,
                    required=True,
                    description=event_type.schema.description,
                ),
                Field(
                    "description",
                    described,
                    description="what the type means now; the type's description if omitted",
                ),
                event_type.examples,
            ),
            description="must read data written with every earlier version (Avro resolution)",
        ),
        update_event_type=Body(
            "EventTypeUpdate",
            (
                Field("description", described, description=event_type.description.description),
                event_type.deprecated,
            ),
            description="only the fields given change",
        ),
        job=job,
        replay=Body("ReplayRequest", (job.since, job.until, job.event_types)),
        recover=Body(
            "RecoverRequest",
            (job.since, job.until, job.event_types),
            description="the deliveries that became failed or dead from `since` until"
            " before `until`, of `event_types` when given",
        ),
        rotation=rotation,
        rotate_secret=Body(
            "SecretRotation",
            (rotation.expire_previous_in_s,),
            description="an empty body (or none) keeps the replaced secret for 24 h",
        ),
        token=token,
        create_token=Body(
            "TokenCreate",
            (token.expires_in_s, token.scopes),
            description="an empty body (or none) makes a token with every scope that never expires",
        ),
        limit=query_int("limit", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT),
        cursor=query_text("cursor", max_chars=1000),
        deliveries=DeliveryQuery(
            subscription_id=query_text("subscription_id", max_chars=ID_CHARS),
            event_id=query_text("event_id", max_chars=ID_CHARS),
            event_type=_exact_event_type("event_type"),
            status=query_text("status", enum=status_enum),
            since=query_timestamp("since"),
            until=query_timestamp("until"),
        ),
        jobs=JobListQuery(
            status=query_text("status", enum=get_args(JobStatus)),
            kind=query_text("kind", enum=get_args(JobKind)),
        ),
        event_types=tuple(enum),
    )
