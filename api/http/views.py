"""What the API answers: each record's JSON form beside the JSON Schema that documents it,
so the OpenAPI document describes exactly what the handlers send."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, get_args

from api.http.fields import JsonSchema
from api.model.history import AttemptRow, DeliveryRow
from core.admission import RefusalReason
from core.delivery_status import STATUSES
from core.filters import FILTER_LIMITS
from core.json_value import JsonValue
from core.records import ApiToken, DeliveryOrigin, Job, JobKind, JobStatus, Subscription
from core.tokens import SCOPES
from core.webhook import CONTENT_TYPES
from schemas.catalog import EventType
from schemas.event_data import format_rfc3339

_TIME: Final[JsonSchema] = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final[JsonSchema] = {"anyOf": [_TIME, {"type": "null"}]}
_STR: Final[JsonSchema] = {"type": "string"}
_STR_OR_NULL: Final[JsonSchema] = {"type": ["string", "null"]}


def _obj(properties: dict[str, JsonSchema], *, required: Sequence[str] | None = None) -> JsonSchema:
    props: dict[str, JsonValue] = dict(properties)
    names: list[JsonValue] = list(properties if required is None else required)
    return {"type": "object", "properties": props, "required": names}


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_rfc3339(moment)


SUBSCRIPTION: Final = _obj(
    {
        "id": _STR,
        "tenant": _STR,
        "url": _STR,
        "event_types": {"type": "array", "items": _STR},
        "filter": {"$ref": "#/components/schemas/Filter"},
        "description": _STR,
        "headers": {
            "type": "object",
            "additionalProperties": _STR,
            "description": "the custom headers; every value shows as `****`",
        },
        "rate_limit": {"type": ["number", "null"]},
        "ordered": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "paused", "disabled"]},
        "disabled_reason": {
            "type": ["string", "null"],
            "description": "why it was disabled (`the endpoint answered 410 Gone`, `no"
            " successful delivery for 5 days`, `disabled through the API`); null unless"
            " disabled",
        },
        "disabled_at": {**_TIME_OR_NULL, "description": "when it was disabled; null unless so"},
        "paused_at": {
            **_TIME_OR_NULL,
            "description": "when it was paused; null unless paused. Events published while"
            " paused are sent when it is resumed (a replay job from `paused_at` to the resume)",
        },
        "content_type": {"type": "string", "enum": list(CONTENT_TYPES)},
        "created_at": _TIME,
        "updated_at": _TIME,
        "version": {"type": "integer"},
    }
)
_VALUE: Final[JsonSchema] = {"type": ["string", "number", "boolean", "null"]}
_VALUES: Final[JsonSchema] = {
    "type": "array",
    "items": _VALUE,
    "minItems": 1,
    "maxItems": FILTER_LIMITS.max_in_values,
}
_ORDERED: Final[JsonSchema] = {"type": ["number", "string"]}
_FILTERS: Final[JsonSchema] = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Filter"},
    "minItems": 1,
}
FILTER: Final[JsonSchema] = {
    "type": "object",
    "description": "Every member must hold. A key is a dotted path into the event's `data`,"
    " `subject` or `actor` (`data.customer.address.country`, `subject.type`; a first name"
    " that is none of those is a `data` field). Its value is compared for JSON equality,"
    " or is an object of operators that must all hold: `$eq`, `$neq`, `$in`, `$nin` (a"
    " missing field is not equal, so `$neq` and `$nin` match it), `$gt`, `$gte`, `$lt`,"
    " `$lte` (numbers with numbers, strings with strings by code point; a missing, null or"
    " other-kind field never matches), `$exists` (true: present and not null). `$and` and"
    " `$or` take arrays of filters and nest."
    f" Bounds: {FILTER_LIMITS.max_tests} tests, `$and`/`$or` {FILTER_LIMITS.max_depth} deep,"
    f" {FILTER_LIMITS.max_in_values} values per `$in`, paths of"
    f" {FILTER_LIMITS.max_path_segments} names.",
    "properties": {"$and": _FILTERS, "$or": _FILTERS},
    "patternProperties": {
        "^[^$]": {
            "anyOf": [
                _VALUE,
                {
                    "type": "object",
                    "minProperties": 1,
                    "properties": {
                        "$eq": _VALUE,
                        "$neq": _VALUE,
                        "$in": _VALUES,
                        "$nin": _VALUES,
                        "$gt": _ORDERED,
                        "$gte": _ORDERED,
                        "$lt": _ORDERED,
                        "$lte": _ORDERED,
                        "$exists": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            ]
        }
    },
    "additionalProperties": False,
}
"""The filter grammar (`core.filters`), one component that `$and` and `$or` refer back to."""
SECRET: Final = _obj({"secret": {"type": "string", "pattern": "^whsec_"}})
SUBSCRIPTION_WITH_SECRET: Final[JsonSchema] = {
    **SUBSCRIPTION,
    "properties": {**SUBSCRIPTION["properties"], **SECRET["properties"]},  # type: ignore[dict-item]
    "required": [*SUBSCRIPTION["required"], "secret"],  # type: ignore[misc]
}


MASKED: Final = "****"
"""Every custom header value as the API shows it: values are often credentials
(`Authorization: Bearer ...`), and any prefix shown would tell part of a short one."""


def subscription_view(sub: Subscription, *, secret: str | None = None) -> dict[str, JsonValue]:
    view: dict[str, JsonValue] = {
        "id": sub.id,
        "tenant": sub.tenant,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "filter": dict(sub.filter.document),
        "description": sub.description,
        "headers": dict.fromkeys((*sub.sealed_headers, *sub.headers), MASKED),
        "rate_limit": sub.rate_limit,
        "ordered": sub.ordered,
        "status": sub.status,
        "disabled_reason": sub.disabled_reason,
        "disabled_at": _time(sub.disabled_at),
        "paused_at": _time(sub.paused_at),
        "content_type": sub.content_type,
        "created_at": _time(sub.created_at),
        "updated_at": _time(sub.updated_at),
        "version": sub.version,
    }
    if secret is not None:
        view["secret"] = secret
    return view


_HEADERS: Final[JsonSchema] = {
    "type": "object",
    "additionalProperties": _STR,
    "description": "names in lower case; a repeated name's values joined with `, `",
}
_MS_OR_NULL: Final[JsonSchema] = {"type": ["integer", "null"]}
ATTEMPT: Final = _obj(
    {
        "attempt": {"type": "integer", "description": "numbered on across re-sends"},
        "origin": {
            "type": ["string", "null"],
            "enum": [*get_args(DeliveryOrigin), "retry", None],
            "description": "why it was made: its command's origin, `retry` for the"
            " scheduled retries after it; null for attempts recorded before origins were",
        },
        "at": _TIME,
        "status_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer"},
        "error": _STR_OR_NULL,
        "response_excerpt": _STR_OR_NULL,
        "outcome": {"type": "string", "enum": ["delivered", "retrying", "dead", "failed"]},
        "next_attempt_at": _TIME_OR_NULL,
        "request": _obj(
            {
                "headers": {
                    **_HEADERS,
                    "description": "as sent, names in lower case: each signature as"
                    " `v1,<redacted>`, every custom header's value as `<redacted>`",
                },
                "body": {
                    "type": ["string", "null"],
                    "description": "the bytes sent, cut at 64 KiB",
                },
            }
        ),
        "response": _obj(
            {
                "status_code": {"type": ["integer", "null"]},
                "headers": {**_HEADERS, "description": "at most 50, values cut at 1024 chars"},
                "body_excerpt": {
                    "type": ["string", "null"],
                    "description": "the first 1024 characters of the body",
                },
            }
        ),
        "timings_ms": _obj(
            {
                "dns": {**_MS_OR_NULL, "description": "name lookup; null: none made"},
                "connect": {**_MS_OR_NULL, "description": "TCP (and TLS); null: pooled"},
                "ttfb": {**_MS_OR_NULL, "description": "start to the response's head"},
                "total": {"type": "integer"},
            }
        ),
    }
)
DELIVERY: Final = _obj(
    {
        "id": _STR,
        "event_id": _STR,
        "event_type": _STR,
        "subscription_id": _STR,
        "tenant": _STR,
        "status": {"type": "string", "enum": list(STATUSES)},
        "next_attempt_at": _TIME_OR_NULL,
        "last_error": _STR_OR_NULL,
        "occurred_at": _TIME_OR_NULL,
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
DELIVERY_WITH_ATTEMPTS: Final[JsonSchema] = {
    **DELIVERY,
    "properties": {**DELIVERY["properties"], "attempts": {"type": "array", "items": ATTEMPT}},  # type: ignore[dict-item]
    "required": [*DELIVERY["required"], "attempts"],  # type: ignore[misc]
}


def delivery_view(
    row: DeliveryRow, attempts: Sequence[AttemptRow] | None = None
) -> dict[str, JsonValue]:
    view: dict[str, JsonValue] = {
        "id": row.delivery_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "subscription_id": row.subscription_id,
        "tenant": row.tenant,
        "status": row.status,
        "next_attempt_at": _time(row.next_attempt_at),
        "last_error": row.last_error,
        "occurred_at": _time(row.occurred_at),
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }
    if attempts is not None:
        view["attempts"] = [attempt_view(a) for a in attempts]
    return view


def attempt_view(a: AttemptRow) -> dict[str, JsonValue]:
    """One attempt and its log; the flat `status_code`, `duration_ms` and
    `response_excerpt` stay beside `response` and `timings_ms` for existing clients."""
    return {
        "attempt": a.attempt,
        "origin": a.origin,
        "at": _time(a.at),
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "error": a.error,
        "response_excerpt": a.response_excerpt,
        "outcome": a.outcome,
        "next_attempt_at": _time(a.next_attempt_at),
        "request": {"headers": dict(a.request_headers), "body": a.request_body},
        "response": {
            "status_code": a.status_code,
            "headers": dict(a.response_headers),
            "body_excerpt": a.response_excerpt,
        },
        "timings_ms": {
            "dns": a.dns_ms,
            "connect": a.connect_ms,
            "ttfb": a.ttfb_ms,
            "total": a.duration_ms,
        },
    }


JOB: Final = _obj(
    {
        "id": _STR,
        "kind": {"type": "string", "enum": list(get_args(JobKind))},
        "tenant": _STR,
        "subscription_id": _STR_OR_NULL,
        "delivery_id": _STR_OR_NULL,
        "since": _TIME_OR_NULL,
        "until": _TIME_OR_NULL,
        "event_types": {"type": "array", "items": _STR},
        "status": {"type": "string", "enum": list(get_args(JobStatus))},
        "scanned": {"type": "integer"},
        "emitted": {"type": "integer"},
        "error": _STR_OR_NULL,
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)


def job_view(job: Job) -> dict[str, JsonValue]:
    return {
        "id": job.id,
        "kind": job.kind,
        "tenant": job.tenant,
        "subscription_id": job.subscription_id,
        "delivery_id": job.delivery_id,
        "since": _time(job.since),
        "until": _time(job.until),
        "event_types": list(job.event_types),
        "status": job.status,
        "scanned": job.scanned,
        "emitted": job.emitted,
        "error": job.error,
        "created_at": _time(job.created_at),
        "updated_at": _time(job.updated_at),
    }


EVENT_TYPE: Final = _obj(
    {
        "name": _STR,
        "doc": _STR,
        "version": {"type": "integer", "minimum": 1, "description": "the latest version"},
        "deprecated": {"type": "boolean"},
        "schema": {"type": "object", "description": "JSON Schema of the latest version's data"},
        "avro": {"type": "object", "description": "Avro schema of the latest version's data"},
    }
)
EVENT_TYPE_VERSION: Final = _obj(
    {
        "version": {"type": "integer", "minimum": 1},
        "doc": _STR,
        "schema": {"type": "object", "description": "JSON Schema of the data"},
        "avro": {"type": "object", "description": "Avro schema of the data"},
        "examples": {"type": "array", "items": {"type": "object"}},
        "created_at": _TIME_OR_NULL,
    }
)
EVENT_TYPE_WITH_VERSIONS: Final[JsonSchema] = {
    **EVENT_TYPE,
    "properties": {
        **EVENT_TYPE["properties"],  # type: ignore[dict-item]
        "versions": {"type": "array", "items": EVENT_TYPE_VERSION, "description": "oldest first"},
    },
    "required": [*EVENT_TYPE["required"], "versions"],  # type: ignore[misc]
}


def event_type_view(entry: EventType) -> dict[str, JsonValue]:
    return {
        "name": entry.name,
        "doc": entry.doc,
        "version": entry.version,
        "deprecated": entry.deprecated,
        "schema": dict(entry.json_schema),
        "avro": entry.avro,
    }


def event_type_versions_view(entry: EventType) -> dict[str, JsonValue]:
    """The type with every version: each one's Avro and JSON Schema, and its examples."""
    versions: list[JsonValue] = [
        {
            "version": v.version,
            "doc": v.doc,
            "schema": dict(v.json_schema),
            "avro": v.avro,
            "examples": list(v.examples),
            "created_at": _time(v.created_at),
        }
        for v in entry.versions
    ]
    return {**event_type_view(entry), "versions": versions}


ACCEPTED_EVENT: Final = _obj({"id": {"type": "string", "format": "uuid"}})
TOKEN: Final = _obj(
    {
        "id": _STR,
        "tenant": _STR,
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
        "created_at": _TIME,
        "expires_at": _TIME_OR_NULL,
    }
)
NEW_TOKEN: Final[JsonSchema] = {
    **TOKEN,
    "properties": {
        **TOKEN["properties"],  # type: ignore[dict-item]
        "token": {"type": "string", "pattern": "^hl_"},
    },
    "required": [*TOKEN["required"], "token"],  # type: ignore[misc]
}


def token_view(token: ApiToken, *, secret: str | None = None) -> dict[str, JsonValue]:
    """A token as listed; `secret` (the token itself) only in the answer that created it."""
    view: dict[str, JsonValue] = {
        "id": token.id,
        "tenant": token.tenant,
        "scopes": list(token.scopes),
        "created_at": _time(token.created_at),
        "expires_at": _time(token.expires_at),
    }
    if secret is not None:
        view["token"] = secret
    return view


SENT: Final = _obj({"delivery_id": _STR, "event_id": _STR, "origin": _STR})
REDELIVERED: Final = _obj(
    {
        **SENT["properties"],  # type: ignore[dict-item]
        "attempt": {
            "type": "integer",
            "description": "the number its attempt gets in the delivery's history",
        },
    }
)
HEALTH: Final = _obj({"status": _STR})
READY: Final = _obj(
    {"status": _STR, "checks": {"type": "object", "additionalProperties": {"type": "boolean"}}}
)
PROBLEM: Final = _obj(
    {
        "type": _STR,
        "title": _STR,
        "status": {"type": "integer"},
        "detail": _STR,
        "scope": {"type": "string", "description": "the scope the token lacks (403)"},
        "errors": {
            "type": "array",
            "items": _obj({"field": _STR, "message": _STR}),
        },
        "quota": _STR,
        "limit": {"type": "number"},
        "current": {"type": "number"},
        "subscription_status": {
            "type": "string",
            "enum": ["active", "paused", "disabled"],
            "description": "the state of the subscription a send was refused for (409)",
        },
        "disabled_reason": _STR_OR_NULL,
        "disabled_at": _TIME_OR_NULL,
        "paused_at": _TIME_OR_NULL,
        "event_id": {
            "type": "string",
            "description": "the event id published lately with other content (409)",
        },
        "reason": {
            "type": "string",
            "enum": list(get_args(RefusalReason)),
            "description": "the rule that refused a publish while delivery lags behind (429"
            " ingest-overloaded): over the limit, a tenant above its fair share; over twice it,"
            " every tenant",
        },
        "lag": {
            "type": "integer",
            "description": "events not yet routed plus commands not yet read by the deliverers"
            " (429 ingest-overloaded); `limit` is the lag the API admits up to",
        },
    },
    required=["type", "title", "status", "detail"],
)


def page_of(item: JsonSchema) -> JsonSchema:
    return _obj({"data": {"type": "array", "items": item}, "next_cursor": _STR_OR_NULL})


def data_of(item: JsonSchema) -> JsonSchema:
    return _obj({"data": {"type": "array", "items": item}})
