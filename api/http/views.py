"""What the API answers: each record's JSON form beside the JSON Schema that documents it,
so the OpenAPI document describes exactly what the handlers send."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, get_args

from api.http.fields import JsonSchema
from api.model.history import AttemptRow, DeliveryRow
from core.delivery_status import STATUSES
from core.records import ApiToken, Job, JobKind, JobStatus, JsonValue, Subscription
from core.tokens import SCOPES
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
        "filter": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "description": _STR,
        "headers": {
            "type": "object",
            "additionalProperties": _STR,
            "description": "the custom headers; every value shows as `****`",
        },
        "rate_limit": {"type": ["number", "null"]},
        "ordered": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "paused", "disabled"]},
        "created_at": _TIME,
        "updated_at": _TIME,
        "version": {"type": "integer"},
    }
)
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
        "filter": dict(sub.filter),
        "description": sub.description,
        "headers": dict.fromkeys((*sub.sealed_headers, *sub.headers), MASKED),
        "rate_limit": sub.rate_limit,
        "ordered": sub.ordered,
        "status": sub.status,
        "created_at": _time(sub.created_at),
        "updated_at": _time(sub.updated_at),
        "version": sub.version,
    }
    if secret is not None:
        view["secret"] = secret
    return view


ATTEMPT: Final = _obj(
    {
        "attempt": {"type": "integer"},
        "at": _TIME,
        "status_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer"},
        "error": _STR_OR_NULL,
        "response_excerpt": _STR_OR_NULL,
        "outcome": {"type": "string", "enum": ["delivered", "retrying", "dead", "failed"]},
        "next_attempt_at": _TIME_OR_NULL,
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
        view["attempts"] = [
            {
                "attempt": a.attempt,
                "at": _time(a.at),
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
                "outcome": a.outcome,
                "next_attempt_at": _time(a.next_attempt_at),
            }
            for a in attempts
        ]
    return view


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
    },
    required=["type", "title", "status", "detail"],
)


def page_of(item: JsonSchema) -> JsonSchema:
    return _obj({"data": {"type": "array", "items": item}, "next_cursor": _STR_OR_NULL})


def data_of(item: JsonSchema) -> JsonSchema:
    return _obj({"data": {"type": "array", "items": item}})
