"""The OpenAPI 3.1 document, generated from the route table and the same field definitions
the handlers parse with; served at `/openapi.json`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from api.http.bodies import Bodies
from api.http.fields import JsonSchema
from api.http.operation import AUTH_ERRORS, Operation
from api.http.views import FILTER, PROBLEM
from api.model.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    Unavailable,
)
from core.json_value import JsonValue
from schemas.catalog import EventCatalog

_ERRORS: Final[dict[int, type[ApiError]]] = {
    e.status: e
    for e in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        RequestTimeout,
        Conflict,
        PayloadTooLarge,
        InvalidInput,
        RateLimited,
        Unavailable,
    )
}


def event_body_schema(bodies: Bodies, catalog: EventCatalog) -> JsonSchema:
    """The publish body, one variant per event type with that type's `data` schema."""
    base = bodies.publish_event.schema()
    properties = base["properties"]
    assert isinstance(properties, dict)
    variants: list[JsonValue] = [
        {
            **base,
            "properties": {
                **properties,
                "type": {"const": entry.name},
                "data": dict(entry.json_schema),
            },
        }
        for entry in catalog.entries()
    ]
    return {"oneOf": variants}


_DESCRIPTIONS: Final[dict[int, str]] = {
    401: "Unauthorized: no bearer token, or one that is unknown, expired or revoked",
    403: "Forbidden: the token lacks the route's scope (named in `scope`), or the route is"
    " the admin's",
    422: "Invalid input: `errors` names each field, path value or query parameter at fault"
    " (a query parameter the route does not take, or one given twice, included)",
    429: "Too many requests; `Retry-After` says when to try again. Type `quota-exceeded`"
    " (`quota` `publish_rate`, its `limit`): the tenant publishes faster than its rate. Type"
    " `ingest-overloaded` (`reason`, `lag`, `limit`): delivery lags too far behind the"
    " publishes; over the limit the tenants publishing above their fair share of the recent"
    " publishes are refused (`reason` `fair_share`), over twice it every tenant (`overloaded`)",
}
_CHALLENGE: Final[JsonValue] = {
    "description": 'the Bearer challenge (RFC 6750): `Bearer realm="hookline"`, with'
    ' `error="invalid_token"` when a token was sent but refused',
    "required": True,
    "schema": {"type": "string", "pattern": "^Bearer "},
}
_RETRY_AFTER: Final[JsonValue] = {
    "description": "whole seconds to wait before publishing again (at least 1)",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def _problem(code: int) -> JsonValue:
    error = _ERRORS[code]
    response: dict[str, JsonValue] = {
        "description": _DESCRIPTIONS.get(code, error.title),
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if code == 401:
        response["headers"] = {"WWW-Authenticate": _CHALLENGE}
    if code == 429:
        response["headers"] = {"Retry-After": _RETRY_AFTER}
    return response


def _operation(op: Operation, components: dict[str, JsonValue]) -> dict[str, JsonValue]:
    parameters: list[JsonValue] = [
        {
            "name": p.placeholder,
            "in": "path",
            "required": True,
            "schema": p.kind.schema,
            "description": f"`{p.name}` in problems",
        }
        for p in op.path_params
    ]
    parameters += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            **({"description": p.description} if p.description else {}),
        }
        for p in op.query
    ]
    responses: dict[str, JsonValue] = {}
    for code, answer in op.answers.items():
        response: dict[str, JsonValue] = {"description": answer.description}
        if answer.schema is not None or answer.content_type != "application/json":
            schema: JsonValue = answer.schema if answer.schema is not None else {"type": "string"}
            response["content"] = {answer.content_type: {"schema": schema}}
        responses[str(code)] = response
    errors = set(op.errors) | {422}  # a query parameter the route does not take, or repeated
    if not op.public:
        errors |= set(AUTH_ERRORS)
    if op.path_params:
        errors |= {404, 422}
    for code in sorted(errors):
        responses[str(code)] = _problem(code)
    out: dict[str, JsonValue] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        assert op.body_name is not None
        components[op.body_name] = op.body
        out["requestBody"] = {
            "required": op.body_required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{op.body_name}"}}
            },
        }
    # OpenAPI 3.1 lets a non-OAuth scheme name the roles an operation needs: its scope
    out["security"] = [] if op.scope is None else [{"bearer": [op.scope]}]
    if op.scope is not None:
        out["description"] = f"Needs a token with the `{op.scope}` scope."
    return out


def build_document(ops: Sequence[Operation], *, version: str) -> dict[str, JsonValue]:
    components: dict[str, JsonValue] = {"Problem": PROBLEM, "Filter": FILTER}
    paths: dict[str, dict[str, JsonValue]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookline admin API",
            "version": version,
            "description": "Subscriptions, events, delivery history, replay and recovery."
            " Every route but the public ones needs `Authorization: Bearer <token>`: the"
            " admin token, or a tenant token holding the route's scope (`read` for GETs,"
            " `write` for changes, `publish` for events). A query parameter a route does not"
            " take, or one given twice, answers 422 naming it, never silently ignored.",
        },
        "paths": dict(paths),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
