"""Regressions the fuzz test (`test_fuzz.py`) and a probe of a running API found: each was a
500 before its fix and is a 4xx problem naming what was wrong now.

- a NUL in a path id or a query value reached PostgreSQL (`psycopg.DataError`);
- a cursor holding a NUL reached PostgreSQL the same way;
- a timestamp in an event's `data` whose UTC form is before year 1 raised `OverflowError`;
- Authorization bytes that are not UTF-8 raised `UnicodeEncodeError` while hashing the token;
- a body whose bytes do not follow its `Content-Encoding` escaped `read_json`.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from core.cursors import encode_cursor
from tests.integration.api.conftest import Api
from tests.integration.api.raw_http import Request, problem_of, send

pytestmark = pytest.mark.integration


async def _fields(api: Api, method: str, path: str, status: int = 422, **kwargs: Any) -> list[str]:
    response = await api.call(method, path, **kwargs)
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    return [error["field"] for error in body.get("errors", ())]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/deliveries/x%00", "delivery_id"),
        ("POST", "/v1/deliveries/x%00/redeliver", "delivery_id"),
        ("GET", "/v1/subscriptions/%00", "subscription_id"),
        ("DELETE", "/v1/subscriptions/a%00b", "subscription_id"),
        ("POST", "/v1/jobs/%00/cancel", "job_id"),
        ("POST", "/v1/tenants/%00/tokens", "tenant"),
    ],
)
async def test_a_nul_in_a_path_value_is_refused_naming_the_parameter(
    api: Api, method: str, path: str, field: str
) -> None:
    assert await _fields(api, method, path) == [field]


@pytest.mark.parametrize("name", ["event_id", "subscription_id", "event_type"])
async def test_a_nul_in_a_query_value_is_refused_naming_it(api: Api, name: str) -> None:
    assert await _fields(api, "GET", "/v1/deliveries", params={name: "a\x00"}) == [name]


@pytest.mark.parametrize("path", ["/v1/deliveries", "/v1/jobs", "/v1/subscriptions"])
async def test_a_cursor_holding_a_nul_is_refused_naming_cursor(api: Api, path: str) -> None:
    cursor = encode_cursor(("2025-01-01T00:00:00+00:00", "d\x00"))
    assert await _fields(api, "GET", path, params={"cursor": cursor}) == ["cursor"]


@pytest.mark.parametrize(
    ("field", "moment"),
    [
        ("data.ended_at", "0001-01-01T00:00:00+14:00"),
        ("data.ended_at", "9999-12-31T23:59:59-14:00"),
        ("data.ended_at", "1969-12-31T23:59:59Z"),
        ("occurred_at", "0001-01-01T00:00:00+14:00"),
        ("occurred_at", "1969-12-31T23:59:59Z"),
    ],
)
async def test_an_event_timestamp_out_of_bounds_is_refused_naming_it(
    api: Api, field: str, moment: str
) -> None:
    data = {"id": "m1", "title": "t", "ended_at": "2025-01-01T00:00:00Z", "attendee_ids": []}
    body: dict[str, Any] = {"type": "meeting.ended", "subject": {"type": "meeting", "id": "m1"}}
    if field == "occurred_at":
        body["occurred_at"] = moment
    else:
        data["ended_at"] = moment
    body["data"] = data
    assert await _fields(api, "POST", "/v1/events", json=body) == [field]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"\xe9t\xe9", b"\xc3\xa9"])
async def test_authorization_bytes_that_are_not_utf8_or_ascii_are_unauthorized(
    api: Api, raw: bytes
) -> None:
    port = api.client.server.port
    assert port is not None
    for value in (b"Bearer " + raw, raw):
        reply = await send(
            port, Request("GET", b"/v1/event-types", ((b"Authorization", value),), b"")
        )
        assert reply.status == 401
        problem_of(reply)


async def test_a_body_that_does_not_follow_its_content_encoding_is_a_bad_request(
    api: Api,
) -> None:
    port = api.client.server.port
    assert port is not None
    headers = (
        (b"Authorization", b"Bearer " + api.admin.encode()),
        (b"Content-Type", b"application/json"),
        (b"Content-Encoding", b"gzip"),
    )
    reply = await send(port, Request("POST", b"/v1/subscriptions", headers, b"not gzip at all"))
    assert reply.status == 400
    assert "encoding" in problem_of(reply)["detail"]
    good = gzip.compress(b'{"url": "https://example.com/hooks", "event_types": ["*"]}')
    reply = await send(port, Request("POST", b"/v1/subscriptions", headers, good))
    assert reply.status == 201, reply
