"""Tenant isolation: a tenant token cannot read, change or list another tenant's records on
any route; the admin sees every tenant."""

from __future__ import annotations

import pytest

from hookline.runtime.settings import Settings
from tests.integration.api.conftest import Api, command, subscription_body, write_history

pytestmark = pytest.mark.integration


async def test_tenant_tokens_are_confined_to_their_tenant(api: Api, api_settings: Settings) -> None:
    acme = await api.tenant_token("acme")
    globex = await api.tenant_token("globex")
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(), token=acme)
    assert sub["tenant"] == "acme"
    mine = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(), token=globex)
    sub_path = f"/v1/subscriptions/{sub['id']}"

    delivery = command(subscription_id=sub["id"], tenant="acme")
    write_history(api_settings, [delivery])
    job = await api.ok(
        "POST", f"{sub_path}/recover", 202, json={"since": "2024-01-01T00:00:00Z"}, token=acme
    )

    # globex sees none of acme's records, on any route: 404 as if they did not exist
    for method, path, body in [
        ("GET", sub_path, None),
        ("PATCH", sub_path, {"description": "taken over"}),
        ("DELETE", sub_path, None),
        ("GET", f"{sub_path}/secret", None),
        ("POST", f"{sub_path}/rotate-secret", None),
        ("POST", f"{sub_path}/test", None),
        ("POST", f"{sub_path}/replay", {"since": "2024-01-01T00:00:00Z"}),
        ("POST", f"{sub_path}/recover", {"since": "2024-01-01T00:00:00Z"}),
        ("GET", f"/v1/jobs/{job['id']}", None),
        ("GET", f"/v1/deliveries/{delivery.delivery_id}", None),
        ("POST", f"/v1/deliveries/{delivery.delivery_id}/redeliver", None),
    ]:
        response = await api.call(method, path, json=body, token=globex)
        assert response.status == 404, (method, path, await response.text())

    listed = await api.ok("GET", "/v1/subscriptions", token=globex)
    assert [s["id"] for s in listed["data"]] == [mine["id"]]
    history = await api.ok("GET", "/v1/deliveries", token=globex)
    assert history["data"] == []
    filtered = await api.ok(
        "GET", "/v1/deliveries", token=globex, params={"subscription_id": sub["id"]}
    )
    assert filtered["data"] == []

    # a tenant token creates only in its own tenant
    response = await api.call(
        "POST", "/v1/subscriptions", json=subscription_body(tenant="acme"), token=globex
    )
    assert response.status == 403
    response = await api.call(
        "POST",
        "/v1/events",
        token=globex,
        json={
            "type": "webhook.ping",
            "tenant": "acme",
            "subject": {"type": "s", "id": "1"},
            "data": {"subscription_id": "x"},
        },
    )
    assert response.status == 403

    # acme sees its own; the admin sees both tenants
    got = await api.ok("GET", f"/v1/deliveries/{delivery.delivery_id}", token=acme)
    assert got["tenant"] == "acme"
    assert (await api.ok("GET", f"/v1/jobs/{job['id']}", token=acme))["id"] == job["id"]
    everything = await api.ok("GET", "/v1/subscriptions", params={"limit": "100"})
    assert {sub["id"], mine["id"]} <= {s["id"] for s in everything["data"]}
    still = await api.ok("GET", sub_path, token=acme)
    assert still["description"] == "test"
