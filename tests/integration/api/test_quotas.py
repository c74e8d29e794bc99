"""Per-tenant quotas against the real API, Kafka and PostgreSQL: a hostile tenant reaches its
limits and is refused with a problem naming them, while another tenant goes on unaffected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.conftest import Services
from tests.integration.api.conftest import Api, drop_schema, make_settings, subscription_body

pytestmark = pytest.mark.integration

PER_TENANT = 4
PER_URL = 2
RATE_PER_S = 1.0
BURST = 3


@pytest.fixture(scope="module")
def api_settings(services: Services) -> Iterator[Settings]:
    """Small quotas, so a test reaches them in a few requests."""
    settings = make_settings(
        services,
        max_subscriptions_per_tenant=PER_TENANT,
        max_subscriptions_per_url=PER_URL,
        max_custom_headers=2,
        max_custom_header_bytes=64,
        publish_rate_per_s=RATE_PER_S,
        publish_burst=BURST,
    )
    ensure_topics(settings)
    yield settings
    drop_schema(settings)


async def refused(api: Api, method: str, path: str, status: int, **kwargs: Any) -> Any:
    response = await api.call(method, path, **kwargs)
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    assert body["type"].endswith("/quota-exceeded")
    return body


async def test_a_tenant_at_its_quota_is_refused_while_another_still_creates(api: Api) -> None:
    hostile = await api.tenant_token("hostile-subs")
    quiet = await api.tenant_token("quiet-subs")
    for n in range(PER_TENANT):
        await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            token=hostile,
            json=subscription_body(url=f"https://example.com/hostile/{n}"),
        )
    body = await refused(
        api,
        "POST",
        "/v1/subscriptions",
        409,
        token=hostile,
        json=subscription_body(url="https://example.com/hostile/one-more"),
    )
    assert body["quota"] == "subscriptions_per_tenant"
    assert (body["limit"], body["current"]) == (PER_TENANT, PER_TENANT)
    assert f"({PER_TENANT})" in body["detail"]
    await api.ok("POST", "/v1/subscriptions", 201, token=quiet, json=subscription_body())


async def test_concurrent_creates_never_pass_the_tenant_quota(api: Api) -> None:
    racer = await api.tenant_token("racing-subs")
    responses = await asyncio.gather(
        *(
            api.call(
                "POST",
                "/v1/subscriptions",
                token=racer,
                json=subscription_body(url=f"https://example.com/race/{n}"),
            )
            for n in range(PER_TENANT + 3)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * PER_TENANT + [409] * 3
    listed = await api.ok("GET", "/v1/subscriptions", token=racer)
    assert len(listed["data"]) == PER_TENANT


async def test_one_url_takes_at_most_its_quota_of_subscriptions(api: Api) -> None:
    fan_out = await api.tenant_token("fan-out")
    target = "https://example.com/one-target"
    created = [
        await api.ok(
            "POST", "/v1/subscriptions", 201, token=fan_out, json=subscription_body(url=target)
        )
        for _ in range(PER_URL)
    ]
    # The same target in another spelling counts too.
    body = await refused(
        api,
        "POST",
        "/v1/subscriptions",
        409,
        token=fan_out,
        json=subscription_body(url="https://EXAMPLE.com:443/one-target"),
    )
    assert (body["quota"], body["limit"], body["current"]) == ("subscriptions_per_url", 2, 2)
    other = await api.ok(
        "POST",
        "/v1/subscriptions",
        201,
        token=fan_out,
        json=subscription_body(url="https://example.com/elsewhere"),
    )
    moved = await refused(
        api,
        "PATCH",
        f"/v1/subscriptions/{other['id']}",
        409,
        token=fan_out,
        json={"url": target},
    )
    assert moved["quota"] == "subscriptions_per_url"
    # An update that keeps its URL is never refused for it.
    await api.ok(
        "PATCH",
        f"/v1/subscriptions/{created[0]['id']}",
        token=fan_out,
        json={"description": "still here"},
    )


async def test_custom_headers_beyond_their_quota_are_refused(api: Api) -> None:
    many = await refused(
        api,
        "POST",
        "/v1/subscriptions",
        409,
        json=subscription_body(headers={"x-a": "1", "x-b": "2", "x-c": "3"}),
    )
    assert (many["quota"], many["limit"], many["current"]) == ("headers", 2, 3)
    large = await refused(
        api,
        "POST",
        "/v1/subscriptions",
        409,
        json=subscription_body(headers={"authorization": "Bearer " + "x" * 100}),
    )
    assert (large["quota"], large["limit"]) == ("header_bytes", 64)
    assert large["current"] == len("authorization") + len("Bearer ") + 100


def _event(tenant: str, n: int) -> dict[str, Any]:
    return {
        "type": "task.created",
        "tenant": tenant,
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": "quota", "project_id": "p-1", "assignee_id": None},
    }


async def test_a_publish_burst_gets_429_with_a_retry_after_a_client_can_honour(
    api: Api,
) -> None:
    hostile = await api.tenant_token("hostile-pub")
    quiet = await api.tenant_token("quiet-pub")
    statuses = []
    for n in range(BURST + 2):
        response = await api.call(
            "POST", "/v1/events", token=hostile, json=_event("hostile-pub", n)
        )
        statuses.append(response.status)
        if response.status == 429:
            throttled = response
            body = await response.json(content_type=None)
    assert statuses == [202] * BURST + [429, 429]
    assert body["type"].endswith("/quota-exceeded")
    assert (body["quota"], body["limit"]) == ("publish_rate", RATE_PER_S)
    retry_after_s = int(throttled.headers["Retry-After"])
    assert retry_after_s >= 1
    # Another tenant publishes its whole burst while the hostile one is throttled.
    for n in range(BURST):
        await api.ok("POST", "/v1/events", 202, token=quiet, json=_event("quiet-pub", n))
    # Honouring Retry-After is enough: what the client is told is what it needs.
    await asyncio.sleep(retry_after_s)
    await api.ok("POST", "/v1/events", 202, token=hostile, json=_event("hostile-pub", 99))
