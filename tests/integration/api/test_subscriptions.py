"""Subscriptions through the API: create, read, list with cursors, update, rotate, ping,
delete; every write is readable at once (the API's table read it back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.http.context import RESOURCES
from core.secretbox import SecretBox
from hookline.runtime.settings import Settings
from schemas.records_avro import RecordCodec
from tests.integration.api.conftest import Api, read_records, subscription_body

pytestmark = pytest.mark.integration


async def test_create_read_update_delete(api: Api) -> None:
    created = await api.ok(
        "POST",
        "/v1/subscriptions",
        201,
        json=subscription_body(
            event_types=["task.created", "meeting.*"],
            filter={"project_id": "p-1"},
            headers={"X-Team": "blue"},
            rate_limit=5,
            ordered=True,
            tenant="acme",
        ),
    )
    assert created["secret"].startswith("whsec_")
    assert created["version"] == 1
    assert created["tenant"] == "acme"
    path = f"/v1/subscriptions/{created['id']}"
    read = await api.ok("GET", path)
    assert "secret" not in read
    assert read["filter"] == {"project_id": "p-1"}
    assert read["headers"] == {"X-Team": "****"}  # values are sealed and never shown
    assert read["rate_limit"] == 5.0
    assert (await api.ok("GET", f"{path}/secret"))["secret"] == created["secret"]

    updated = await api.ok("PATCH", path, json={"status": "paused", "rate_limit": None})
    assert updated["status"] == "paused"
    assert updated["rate_limit"] is None
    assert updated["version"] == 2
    assert updated["url"] == created["url"]
    assert (await api.ok("GET", path))["status"] == "paused"

    await api.ok("DELETE", path, 204)
    assert (await api.call("GET", path)).status == 404


async def test_a_filter_is_checked_against_the_types_it_applies_to(api: Api) -> None:
    """A filter on a field only `task.assigned` has fits `task.*`; narrowing the types to
    `task.created` alone leaves it testing a field no such event has: 422 naming it."""
    document = {"data.previous_assignee_id": {"$exists": True}, "subject.type": "task"}
    created = await api.ok(
        "POST", "/v1/subscriptions", 201, json=subscription_body(filter=document)
    )
    assert created["filter"] == document
    path = f"/v1/subscriptions/{created['id']}"
    response = await api.call("PATCH", path, json={"event_types": ["task.created"]})
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["filter.data.previous_assignee_id.$exists"]
    assert (await api.ok("GET", path))["version"] == 1
    updated = await api.ok("PATCH", path, json={"filter": {"project_id": {"$in": ["p-1"]}}})
    assert updated["filter"] == {"project_id": {"$in": ["p-1"]}}
    assert (await api.ok("PATCH", path, json={"status": "paused"}))["status"] == "paused"


async def test_rotation_keeps_the_old_secret_for_a_day(api: Api, api_settings: Settings) -> None:
    created = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    path = f"/v1/subscriptions/{created['id']}"
    rotated = await api.ok("POST", f"{path}/rotate-secret")
    assert rotated["secret"] != created["secret"]
    assert rotated["version"] == 2
    assert (await api.ok("GET", f"{path}/secret"))["secret"] == rotated["secret"]

    sub = api.client.app[RESOURCES].subscriptions.get(created["id"])
    assert sub is not None
    assert api_settings.secret_key is not None
    box = SecretBox.from_base64(api_settings.secret_key.value)
    opened = {box.open(s.ciphertext, subscription_id=sub.id): s.expires_at for s in sub.secrets}
    assert opened[rotated["secret"]] is None
    expires = opened[created["secret"]]
    assert expires is not None
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    # ciphertexts are bound to the subscription, never stored in the clear
    assert all(created["secret"].encode() not in s.ciphertext for s in sub.secrets)


def _expiries(api: Api, settings: Settings, subscription_id: str) -> dict[str, datetime | None]:
    sub = api.client.app[RESOURCES].subscriptions.get(subscription_id)
    assert sub is not None
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    return {box.open(s.ciphertext, subscription_id=sub.id): s.expires_at for s in sub.secrets}


def _about(moment: datetime | None, delta: timedelta) -> bool:
    return moment is not None and abs(moment - (datetime.now(UTC) + delta)) < timedelta(minutes=1)


async def test_a_second_rotation_keeps_both_older_secrets(api: Api, api_settings: Settings) -> None:
    """Regression: a second rotation dropped the secret the first kept for a day."""
    created = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    path = f"/v1/subscriptions/{created['id']}/rotate-secret"
    first = await api.ok("POST", path, json={"expire_previous_in_s": 7200})
    second = await api.ok("POST", path, json={"expire_previous_in_s": 600})
    expiries = _expiries(api, api_settings, created["id"])
    assert set(expiries) == {created["secret"], first["secret"], second["secret"]}
    assert expiries[second["secret"]] is None
    assert _about(expiries[first["secret"]], timedelta(minutes=10))
    assert _about(expiries[created["secret"]], timedelta(hours=2))


async def test_a_rotation_with_no_overlap_drops_the_old_secret(
    api: Api, api_settings: Settings
) -> None:
    created = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    path = f"/v1/subscriptions/{created['id']}/rotate-secret"
    rotated = await api.ok("POST", path, json={"expire_previous_in_s": 0})
    assert set(_expiries(api, api_settings, created["id"])) == {rotated["secret"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"overlap": 5}, "overlap"),
        ({"expire_previous_in_s": -1}, "expire_previous_in_s"),
        ({"expire_previous_in_s": 7 * 86_400 + 1}, "expire_previous_in_s"),
        ({"expire_previous_in_s": "soon"}, "expire_previous_in_s"),
    ],
)
async def test_rotation_names_a_bad_or_unknown_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    """Regression: rotate-secret ignored its body, so a misspelt field rotated anyway."""
    created = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    path = f"/v1/subscriptions/{created['id']}"
    response = await api.call("POST", f"{path}/rotate-secret", json=body)
    assert response.status == 422, await response.text()
    assert [e["field"] for e in (await response.json(content_type=None))["errors"]] == [field]
    assert (await api.ok("GET", path))["version"] == 1


async def test_list_pages_with_a_cursor(api: Api) -> None:
    token = await api.tenant_token("pager")
    ids = [
        (await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(), token=token))[
            "id"
        ]
        for _ in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = await api.ok("GET", "/v1/subscriptions", params=params, token=token)
        assert len(page["data"]) <= 2
        seen += [s["id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


async def test_ping_sends_a_webhook_ping_command(api: Api, api_settings: Settings) -> None:
    created = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    sent = await api.ok("POST", f"/v1/subscriptions/{created['id']}/test", 202)
    codec: RecordCodec = api.client.app[RESOURCES].codec.codec
    records = read_records(api_settings, api_settings.topic("deliveries"), count=1)
    commands = [codec.decode_delivery_command(r.value() or b"") for r in records]
    ping = next(c for c in commands if c.delivery_id == sent["delivery_id"])
    assert ping.event_type == "webhook.ping"
    assert ping.origin == "test"
    assert ping.subscription_id == created["id"]
    assert b'"data":{"subscription_id":"' + created["id"].encode() in ping.payload


async def test_event_types_lists_the_catalog(api: Api) -> None:
    catalog = await api.ok("GET", "/v1/event-types")
    names = {entry["name"] for entry in catalog["data"]}
    assert {"task.created", "task.assigned", "meeting.ended", "webhook.ping"} <= names
    task = next(e for e in catalog["data"] if e["name"] == "task.created")
    assert task["schema"]["properties"]["title"] == {"type": "string"}
