"""Token lifecycle and authentication against the real app, Kafka and PostgreSQL: create,
list and revoke; a revoked token refused by every API process within 5 s; expiry; scopes on
every kind of route; any bytes in the Authorization header answered 401; the platform's own
event types refused to tenants; and tokens of the old `api_tokens` table kept working."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from psycopg import sql

from api.http.app import create_app
from core.tokens import hash_token
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.conftest import Services
from tests.integration.api.conftest import Api, drop_schema, make_settings, subscription_body
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration

REVOKE_WITHIN_S = 5.0
TASK: dict[str, Any] = {
    "type": "task.created",
    "subject": {"type": "task", "id": "t-1"},
    "data": {"id": "t-1", "title": "Write", "project_id": "p"},
}
PING: dict[str, Any] = {
    "type": "webhook.ping",
    "subject": {"type": "subscription", "id": "s-1"},
    "data": {"subscription_id": "s-1"},
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def other_api(api_settings: Settings, api: Api) -> AsyncIterator[Api]:
    """A second API process on the same topics and database (its own tables and clients)."""
    app = create_app(api_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert api_settings.admin_token is not None
        yield Api(client, api_settings.admin_token.value)


async def _create(api: Api, tenant: str, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = await api.ok(
        "POST", f"/v1/tenants/{tenant}/tokens", 201, json=body or None
    )
    return created


async def _status(api: Api, token: str, path: str = "/v1/subscriptions") -> int:
    response = await api.call("GET", path, token=token)
    await response.read()
    return response.status


async def _problem(response: Any, status: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    return body


def _fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


# -- create, list, revoke ---------------------------------------------------------------------


async def test_create_list_and_revoke(api: Api) -> None:
    tenant = f"lc-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    full = await _create(api, tenant)
    assert set(full) == {"id", "token", "tenant", "scopes", "created_at", "expires_at"}
    assert full["token"].startswith("hl_")
    assert (full["tenant"], full["scopes"], full["expires_at"]) == (
        tenant,
        ["read", "write", "publish"],
        None,
    )
    assert datetime.fromisoformat(full["created_at"]) >= before.replace(microsecond=0)
    narrow = await _create(api, tenant, scopes=["read"], expires_in_s=3600)
    assert narrow["scopes"] == ["read"]
    lifetime = datetime.fromisoformat(narrow["expires_at"]) - datetime.fromisoformat(
        narrow["created_at"]
    )
    assert lifetime.total_seconds() == 3600
    third = await _create(api, tenant, scopes=["publish", "write"])
    assert third["scopes"] == ["write", "publish"]
    elsewhere = await _create(api, f"other-{tenant}")

    # listed oldest first, in pages, never with the token itself
    listed = await api.ok("GET", f"/v1/tenants/{tenant}/tokens")
    assert [t["id"] for t in listed["data"]] == [full["id"], narrow["id"], third["id"]]
    assert listed["next_cursor"] is None
    assert listed["data"][1] == {k: v for k, v in narrow.items() if k != "token"}
    first = await api.ok("GET", f"/v1/tenants/{tenant}/tokens", params={"limit": "2"})
    assert [t["id"] for t in first["data"]] == [full["id"], narrow["id"]]
    rest = await api.ok(
        "GET", f"/v1/tenants/{tenant}/tokens", params={"cursor": first["next_cursor"]}
    )
    assert [t["id"] for t in rest["data"]] == [third["id"]]
    assert rest["next_cursor"] is None

    # each token works, in its tenant only
    assert await _status(api, full["token"]) == 200
    mine = await api.ok(
        "POST", "/v1/subscriptions", 201, json=subscription_body(), token=full["token"]
    )
    assert mine["tenant"] == tenant

    # revoke: 204, then refused; gone from the list; a second revoke or a wrong tenant is 404
    path = f"/v1/tenants/{tenant}/tokens/{full['id']}"
    wrong_tenant = await api.call("DELETE", f"/v1/tenants/other-{tenant}/tokens/{full['id']}")
    await _problem(wrong_tenant, 404)
    await api.ok("DELETE", path, 204)
    response = await api.call("GET", "/v1/subscriptions", token=full["token"])
    assert (await _problem(response, 401))["detail"] == "the token was revoked"
    listed = await api.ok("GET", f"/v1/tenants/{tenant}/tokens")
    assert [t["id"] for t in listed["data"]] == [narrow["id"], third["id"]]
    await _problem(await api.call("DELETE", path), 404)
    unknown = await api.call("DELETE", f"/v1/tenants/{tenant}/tokens/{uuid.uuid4()}")
    await _problem(unknown, 404)
    assert await _status(api, elsewhere["token"]) == 200, "another tenant's token is untouched"


async def test_the_token_routes_are_the_admins(api: Api) -> None:
    tenant = f"adm-{uuid.uuid4().hex[:8]}"
    token = (await _create(api, tenant))["token"]
    for method, path in [
        ("POST", f"/v1/tenants/{tenant}/tokens"),
        ("GET", f"/v1/tenants/{tenant}/tokens"),
        ("DELETE", f"/v1/tenants/{tenant}/tokens/{uuid.uuid4()}"),
    ]:
        response = await api.call(method, path, token=token)
        assert (await _problem(response, 403))["detail"] == "this route needs the admin token"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["read", "admin"]}, "scopes[1]"),
        ({"scopes": ["write", "write"]}, "scopes[1]"),
        ({"scopes": []}, "scopes"),
        ({"expires_in_s": 0}, "expires_in_s"),
        ({"expires_in_s": 2.5}, "expires_in_s"),
        ({"expires_in_s": 10 * 366 * 86400}, "expires_in_s"),
        ({"expires_in_s": "3600"}, "expires_in_s"),
        ({"lifetime": 5}, "lifetime"),
    ],
)
async def test_a_bad_token_request_names_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.call("POST", "/v1/tenants/acme/tokens", json=body)
    assert _fields(await _problem(response, 422)) == {field}


async def test_a_bad_tenant_in_the_path_is_422(api: Api) -> None:
    for method in ("GET", "POST"):
        response = await api.call(method, "/v1/tenants/not%20a%20tenant/tokens")
        assert _fields(await _problem(response, 422)) == {"tenant"}


# -- every API process, within 5 s ------------------------------------------------------------


async def test_a_revoked_token_is_refused_by_every_api_process_within_5_s(
    api: Api, other_api: Api
) -> None:
    tenant = f"rv-{uuid.uuid4().hex[:8]}"
    created = await _create(api, tenant)
    token = created["token"]

    async def accepted_by_both() -> bool:
        return await _status(api, token) == 200 and await _status(other_api, token) == 200

    await eventually_async(accepted_by_both, "the new token works on both processes")
    await other_api.ok("DELETE", f"/v1/tenants/{tenant}/tokens/{created['id']}", 204)
    revoked_at = asyncio.get_running_loop().time()

    async def refused_by_both() -> bool:
        return await _status(api, token) == 401 and await _status(other_api, token) == 401

    await eventually_async(
        refused_by_both, "the revoked token refused by both", timeout_s=REVOKE_WITHIN_S
    )
    assert asyncio.get_running_loop().time() - revoked_at < REVOKE_WITHIN_S
    for process in (api, other_api):
        response = await process.call("GET", "/v1/subscriptions", token=token)
        await _problem(response, 401)
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="hookline", error="invalid_token"')


async def test_an_expired_token_is_refused(api: Api, other_api: Api) -> None:
    created = await _create(api, f"exp-{uuid.uuid4().hex[:8]}", expires_in_s=1)
    expires_at = datetime.fromisoformat(created["expires_at"])

    async def refused_by_both() -> bool:
        return (
            await _status(api, created["token"]) == 401
            and await _status(other_api, created["token"]) == 401
        )

    await eventually_async(refused_by_both, "the token refused once expired", timeout_s=5)
    assert datetime.now(UTC) >= expires_at
    response = await api.call("GET", "/v1/subscriptions", token=created["token"])
    assert (await _problem(response, 401))["detail"] == "the token has expired"


# -- scopes -----------------------------------------------------------------------------------


async def test_each_scope_opens_only_its_routes(api: Api) -> None:
    tenant = f"sc-{uuid.uuid4().hex[:8]}"
    reader = (await _create(api, tenant, scopes=["read"]))["token"]
    writer = (await _create(api, tenant, scopes=["write"]))["token"]
    publisher = (await _create(api, tenant, scopes=["publish"]))["token"]

    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(), token=writer)
    sub_path = f"/v1/subscriptions/{sub['id']}"
    for path in ("/v1/subscriptions", sub_path, "/v1/jobs", "/v1/deliveries", "/v1/event-types"):
        assert await _status(api, reader, path) == 200, path
    await api.ok("POST", "/v1/events", 202, json=TASK, token=publisher)

    refusals: list[tuple[str, str, Any, str, str]] = [
        ("POST", "/v1/subscriptions", subscription_body(), reader, "write"),
        ("PATCH", sub_path, {"description": "x"}, reader, "write"),
        ("DELETE", sub_path, None, reader, "write"),
        ("POST", f"{sub_path}/rotate-secret", None, reader, "write"),
        ("POST", f"{sub_path}/test", None, reader, "write"),
        ("POST", f"{sub_path}/replay", {"since": "2024-01-01T00:00:00Z"}, reader, "write"),
        ("POST", f"{sub_path}/recover", {"since": "2024-01-01T00:00:00Z"}, reader, "write"),
        ("POST", f"/v1/jobs/{uuid.uuid4()}/cancel", None, reader, "write"),
        ("POST", f"/v1/deliveries/{uuid.uuid4()}/redeliver", None, reader, "write"),
        ("POST", "/v1/events", TASK, reader, "publish"),
        ("POST", "/v1/events", TASK, writer, "publish"),
        ("POST", "/v1/subscriptions", subscription_body(), publisher, "write"),
        ("GET", "/v1/subscriptions", None, writer, "read"),
        ("GET", f"{sub_path}/secret", None, publisher, "write"),
        ("GET", f"{sub_path}/secret", None, reader, "write"),  # a secret signs webhooks
    ]
    for method, path, body, token, scope in refusals:
        response = await api.call(method, path, json=body, token=token)
        problem = await _problem(response, 403)
        assert problem["scope"] == scope, (method, path)
        assert scope in problem["detail"]
        assert f'scope="{scope}"' in response.headers["WWW-Authenticate"]
    still = await api.ok("GET", sub_path, token=reader)
    assert still["description"] == "test", "nothing a refused request asked for happened"


# -- the Authorization header, whatever its bytes ---------------------------------------------


async def _raw_get(api: Api, authorization: bytes) -> tuple[int, dict[str, str]]:
    """GET /v1/subscriptions with exactly these header bytes (no client re-encodes them).
    Control characters other than tab are not among them: aiohttp's HTTP parser answers
    400 to those before the app sees the request."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(
            b"GET /v1/subscriptions HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n\r\n"
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return status, headers


@pytest.mark.parametrize(
    ("authorization", "refused_token"),
    [
        (b"Bearer \xff\xfe", True),
        (b"Bearer hl_\xff\xfe", True),
        (b"Bearer hl_\xc3\xa9t\xc3\xa9", True),  # valid UTF-8, not ASCII
        (b"Bearer \xc3\x28\xa0\xa1", True),  # invalid UTF-8
        (b"Bearer " + bytes(range(0x80, 0x100)), True),
        (b"Bearer hl_" + b"A" * 4000, True),
        (b"Bearer hl_a\tb", True),
        (b"Bearer\thl_abc", False),
        (b"\xff\xfe", False),
        (b"Bearer", False),
        (b"Basic dXNlcjpwYXNz", False),
    ],
)
async def test_any_bytes_in_authorization_are_401_with_a_challenge(
    api: Api, authorization: bytes, refused_token: bool
) -> None:
    status, headers = await _raw_get(api, authorization)
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    challenge = headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="hookline"')
    assert ('error="invalid_token"' in challenge) is refused_token


async def test_no_token_is_a_plain_challenge(api: Api) -> None:
    response = await api.call("GET", "/v1/subscriptions", anonymous=True)
    await _problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hookline"'


# -- the platform's own event types -----------------------------------------------------------


async def test_a_tenant_may_not_publish_webhook_types(api: Api) -> None:
    token = (await _create(api, f"pub-{uuid.uuid4().hex[:8]}"))["token"]
    response = await api.call("POST", "/v1/events", json=PING, token=token)
    problem = await _problem(response, 422)
    assert _fields(problem) == {"type"}
    assert "webhook." in problem["errors"][0]["message"]
    await api.ok("POST", "/v1/events", 202, json=TASK, token=token)
    await api.ok("POST", "/v1/events", 202, json=PING)  # the admin is the platform


# -- tokens of the old api_tokens table -------------------------------------------------------

LEGACY_DDL = """
    CREATE TABLE IF NOT EXISTS api_tokens (
        token_hash text PRIMARY KEY,
        tenant text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
"""


@pytest.fixture
def legacy_settings(services: Services) -> Iterator[Settings]:
    """A deployment of the version before: a row in `api_tokens`, no tokens topic records."""
    settings = make_settings(services)
    ensure_topics(settings)
    yield settings
    drop_schema(settings)


def _legacy_rows(settings: Settings, *rows: tuple[str, str]) -> list[tuple[str, str]]:
    """Insert rows (hash, tenant) when given; the rows left in `api_tokens`."""
    assert settings.database_url is not None
    schema = sql.Identifier(settings.topic_prefix)
    with psycopg.connect(settings.database_url.value, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("SET search_path TO {}").format(schema))
        conn.execute(LEGACY_DDL)
        for digest, tenant in rows:
            conn.execute(
                "INSERT INTO api_tokens (token_hash, tenant) VALUES (%s, %s)", [digest, tenant]
            )
        found = conn.execute("SELECT token_hash, tenant FROM api_tokens").fetchall()
    return [(str(h), str(t)) for h, t in found]


async def test_a_token_of_the_old_table_keeps_working_and_can_be_revoked(
    legacy_settings: Settings,
) -> None:
    old = "hl_" + uuid.uuid4().hex
    _legacy_rows(legacy_settings, (hash_token(old), "initech"))
    assert legacy_settings.admin_token is not None
    admin = legacy_settings.admin_token.value
    first = create_app(legacy_settings, CollectorRegistry())
    async with TestClient(TestServer(first)) as client:
        api = Api(client, admin)
        assert await _status(api, old) == 200, "every scope, as before"
        await api.ok("POST", "/v1/events", 202, json=TASK, token=old)
        listed = await api.ok("GET", "/v1/tenants/initech/tokens")
        assert len(listed["data"]) == 1
        migrated = listed["data"][0]
        assert (migrated["scopes"], migrated["expires_at"]) == (["read", "write", "publish"], None)
        assert _legacy_rows(legacy_settings) == [], "moved onto the topic, then deleted"
        await api.ok("DELETE", f"/v1/tenants/initech/tokens/{migrated['id']}", 204)
        assert await _status(api, old) == 401
    again = create_app(legacy_settings, CollectorRegistry())  # a restart reads the topic
    async with TestClient(TestServer(again)) as client:
        api = Api(client, admin)
        assert await _status(api, old) == 401, "a revoked legacy token stays revoked"
        assert (await api.ok("GET", "/v1/tenants/initech/tokens"))["data"] == []
