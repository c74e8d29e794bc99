"""Every route's errors, driven from the route table itself: 401 without or with a wrong
token, 404 for unknown ids, 413 for a 20 MiB body, 400 for malformed JSON, 422 naming the
field for each invalid input, and tenant isolation on every route."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_asyncio

from api.http.bodies import build_bodies
from api.http.operation import Operation
from api.http.routes import operations
from schemas.catalog import load_catalog
from tests.integration.api.conftest import Api, subscription_body

pytestmark = pytest.mark.integration

OPERATIONS = operations(build_bodies(load_catalog().names(), ()), {})
PRIVATE = [op for op in OPERATIONS if not op.public]
WITH_ID = [op for op in OPERATIONS if "{id}" in op.path]
WITH_BODY = [op for op in OPERATIONS if op.body is not None]
TWENTY_MIB = 20 * 1024 * 1024


def _ids(ops: list[Operation]) -> list[str]:
    return [op.operation_id for op in ops]


def _path(op: Operation, ident: str) -> str:
    return op.path.replace("{id}", ident).replace("{tenant}", "acme").replace("{name}", "x.y")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def subscription_id(api: Api) -> str:
    body = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    return str(body["id"])


async def _problem(response: Any, status: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


@pytest.mark.parametrize("op", PRIVATE, ids=_ids(PRIVATE))
async def test_no_token_is_401(api: Api, op: Operation) -> None:
    response = await api.call(op.method, _path(op, str(uuid.uuid4())), anonymous=True)
    await _problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hookline"'


@pytest.mark.parametrize("op", PRIVATE, ids=_ids(PRIVATE))
async def test_wrong_token_is_401(api: Api, op: Operation) -> None:
    response = await api.call(op.method, _path(op, str(uuid.uuid4())), token="hl_not-a-token")
    await _problem(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="hookline", error="invalid_token"')


@pytest.mark.parametrize("op", WITH_ID, ids=_ids(WITH_ID))
async def test_unknown_id_is_404(api: Api, op: Operation) -> None:
    body = {"since": "2024-01-01T00:00:00Z"} if op.body is not None else None
    response = await api.call(op.method, _path(op, str(uuid.uuid4())), json=body)
    await _problem(response, 404)


@pytest.mark.parametrize("op", WITH_BODY, ids=_ids(WITH_BODY))
async def test_twenty_mib_body_is_413(api: Api, op: Operation, subscription_id: str) -> None:
    data = b'{"a": "' + b"x" * TWENTY_MIB + b'"}'
    response = await api.call(op.method, _path(op, subscription_id), data=data)
    await _problem(response, 413)


@pytest.mark.parametrize("op", WITH_BODY, ids=_ids(WITH_BODY))
async def test_malformed_json_is_400(api: Api, op: Operation, subscription_id: str) -> None:
    response = await api.call(op.method, _path(op, subscription_id), data=b'{"url": ')
    await _problem(response, 400)


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    await _problem(await api.call("GET", "/v1/nothing-here"), 404)
    await _problem(await api.call("PUT", "/v1/subscriptions"), 405)


LONG_URL = "https://example.com/" + "a" * 2100
INVALID_SUBSCRIPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": LONG_URL}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "http://10.0.0.1/hook"}, "url"),
    ({"url": "https://[::ffff:127.0.0.1]/hook"}, "url"),
    ({"url": "https:///no-host"}, "url"),
    ({"url": 12}, "url"),
    ({"event_types": ["nope.created"]}, "event_types[0]"),
    ({"event_types": ["task.created", "ghost.*"]}, "event_types[1]"),
    ({"event_types": []}, "event_types"),
    ({"event_types": "task.*"}, "event_types"),
    ({"filter": {"project_id": {"nested": 1}}}, "filter.project_id.nested"),
    ({"filter": ["x"]}, "filter"),
    ({"filter": {"data.nope": 1}}, "filter.data.nope"),
    ({"filter": {"data.project_id": {"$gte": 100}}}, "filter.data.project_id.$gte"),
    ({"filter": {"data.project_id": {"$regex": "^p"}}}, "filter.data.project_id.$regex"),
    ({"filter": {"$or": [{"subject.id": {"$in": "t-1"}}]}}, "filter.$or[0].subject.id.$in"),
    (
        {"filter": {"$or": [{"$or": [{"$or": [{"$or": [{"$or": []}]}]}]}]}},
        "filter.$or[0].$or[0].$or[0].$or[0].$or",
    ),
    ({"filter": {"title": {"$nin": list(range(101))}}}, "filter.title.$nin"),
    ({"headers": {"webhook-id": "forged"}}, "headers.webhook-id"),
    ({"headers": {"bad name": "x"}}, "headers.bad name"),
    ({"headers": {"x-ok": "line\nbreak"}}, "headers.x-ok"),
    ({"headers": {"x-num": 1}}, "headers.x-num"),
    ({"rate_limit": 0}, "rate_limit"),
    ({"rate_limit": -3}, "rate_limit"),
    ({"rate_limit": "fast"}, "rate_limit"),
    ({"description": "d" * 1001}, "description"),
    ({"status": "gone"}, "status"),
    ({"ordered": "yes"}, "ordered"),
    ({"tenant": "not a tenant!"}, "tenant"),
    ({"surprise": 1}, "surprise"),
]


def _fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


@pytest.mark.parametrize(("change", "field"), INVALID_SUBSCRIPTIONS)
async def test_invalid_subscription_names_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    response = await api.call("POST", "/v1/subscriptions", json=subscription_body(**change))
    assert field in _fields(await _problem(response, 422))


async def test_missing_required_fields_are_each_named(api: Api) -> None:
    response = await api.call("POST", "/v1/subscriptions", json={})
    assert _fields(await _problem(response, 422)) == {"url", "event_types"}
    response = await api.call("POST", "/v1/subscriptions", json=["not", "an", "object"])
    assert _fields(await _problem(response, 422)) == {"body"}


@pytest.mark.parametrize(("change", "field"), INVALID_SUBSCRIPTIONS[:-2])
async def test_invalid_update_names_the_field(
    api: Api, subscription_id: str, change: dict[str, Any], field: str
) -> None:
    response = await api.call("PATCH", f"/v1/subscriptions/{subscription_id}", json=change)
    assert field in _fields(await _problem(response, 422))


def _event(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "task.created",
        "subject": {"type": "task", "id": "t-1"},
        "data": {"id": "t-1", "title": "Write", "project_id": "p-1", "assignee_id": None},
    }
    body.update(changes)
    return body


INVALID_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"type": "nope.created"}, "type"),
    ({"subject": None}, "subject"),
    ({"subject": {"type": "task"}}, "subject.id"),
    ({"subject": {"type": "task", "id": "t", "x": 1}}, "subject.x"),
    ({"data": {"id": "t-1", "project_id": "p-1"}}, "data.title"),
    ({"data": {"id": "t-1", "title": 5, "project_id": "p-1"}}, "data.title"),
    ({"data": {"id": "t-1", "title": "x", "project_id": "p", "extra": 1}}, "data.extra"),
    ({"data": "text"}, "data"),
    ({"id": "not-a-uuid"}, "id"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"actor": {"type": "user"}}, "actor.id"),
    ({"tenant": "bad tenant"}, "tenant"),
    ({"trace": 7}, "trace"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_EVENTS)
async def test_invalid_event_names_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    body = _event(**change)
    if change.get("subject", 0) is None:
        del body["subject"]
    response = await api.call("POST", "/v1/events", json=body)
    assert field in _fields(await _problem(response, 422))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("replay", {}, "since"),
        ("replay", {"since": "soon"}, "since"),
        ("replay", {"since": "2030-01-01T00:00:00Z"}, "since"),
        ("replay", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
        ("replay", {"since": "2024-01-01T00:00:00Z", "event_types": ["ghost.*"]}, "event_types[0]"),
        ("recover", {}, "since"),
        ("recover", {"since": 5}, "since"),
        ("recover", {"since": "2030-01-01T00:00:00Z"}, "since"),
        ("recover", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
        (
            "recover",
            {"since": "2024-01-01T00:00:00Z", "event_types": ["ghost.*"]},
            "event_types[0]",
        ),
    ],
)
async def test_invalid_job_names_the_field(
    api: Api, subscription_id: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await api.call("POST", f"/v1/subscriptions/{subscription_id}/{path}", json=body)
    assert field in _fields(await _problem(response, 422))


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/deliveries", {"limit": "0"}, "limit"),
        ("/v1/deliveries", {"limit": "101"}, "limit"),
        ("/v1/deliveries", {"status": "lost"}, "status"),
        ("/v1/deliveries", {"since": "monday"}, "since"),
        ("/v1/deliveries", {"cursor": "!!garbage"}, "cursor"),
        ("/v1/deliveries", {"cursor": "WyJ4Il0"}, "cursor"),  # a list of one string
        ("/v1/subscriptions", {"limit": "many"}, "limit"),
        ("/v1/subscriptions", {"cursor": "bm9wZQ"}, "cursor"),
    ],
)
async def test_invalid_query_names_the_field(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = await api.call("GET", path, params=params)
    assert field in _fields(await _problem(response, 422))


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/deliveries", {"stat": "dead"}, "stat"),
        ("/v1/deliveries", {"event_type": "task.*"}, "event_type"),
        ("/v1/deliveries", {"event_type": "*"}, "event_type"),
        ("/v1/subscriptions", {"status": "paused"}, "status"),
        ("/v1/jobs", {"subscription_id": "x"}, "subscription_id"),
        ("/v1/tenants/acme/tokens", {"scope": "read"}, "scope"),
        ("/v1/event-types", {"name": "task.created"}, "name"),
        ("/healthz", {"verbose": "1"}, "verbose"),
    ],
)
async def test_a_query_parameter_the_route_does_not_take_is_named(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    """Regression: unknown parameters and patterns were ignored, answering an unfiltered page."""
    response = await api.call("GET", path, params=params)
    assert _fields(await _problem(response, 422)) == {field}


async def test_a_query_parameter_given_twice_is_named(api: Api) -> None:
    response = await api.call("GET", "/v1/deliveries?status=dead&status=failed")
    body = await _problem(response, 422)
    assert body["errors"] == [{"field": "status", "message": "given more than once"}]


@pytest.mark.parametrize("op", WITH_ID, ids=_ids(WITH_ID))
async def test_a_query_parameter_on_a_route_without_any_is_named(
    api: Api, op: Operation, subscription_id: str
) -> None:
    response = await api.call(op.method, _path(op, subscription_id), params={"dry_run": "1"})
    assert _fields(await _problem(response, 422)) == {"dry_run"}


async def test_token_route_checks_tenant_and_admin(api: Api) -> None:
    response = await api.call("POST", "/v1/tenants/bad%20name/tokens")
    assert _fields(await _problem(response, 422)) == {"tenant"}
    token = await api.tenant_token("acme")
    response = await api.call("POST", "/v1/tenants/acme/tokens", token=token)
    await _problem(response, 403)
