"""Custom header values are sealed on `hookline.subscriptions` and masked by the API; a record
written before sealing (clear values) is read, masked, and sealed on its next write."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from api.http.context import RESOURCES
from core.records import StoredSecret, Subscription, utc_ms
from hookline.runtime.settings import Settings
from tests.factories import subscription
from tests.integration.api.conftest import Api, read_records, subscription_body
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TOKEN = "Bearer hl-test-" + uuid.uuid4().hex


def _values(api_settings: Settings, sub_id: str, *, on_topic: int) -> list[bytes]:
    """The values of the subscription's records, oldest first, once the module's topic holds
    `on_topic` records (this module's tests run in order and write 1, then 2)."""
    records = read_records(api_settings, api_settings.topic("subscriptions"), count=on_topic)
    return [r.value() or b"" for r in records if r.key() == sub_id.encode()]


async def test_header_values_are_sealed_on_the_topic_and_masked_by_the_api(
    api: Api, api_settings: Settings
) -> None:
    created = await api.ok(
        "POST",
        "/v1/subscriptions",
        201,
        json=subscription_body(headers={"Authorization": TOKEN, "X-Team": "ops"}),
    )
    masked = {"Authorization": "****", "X-Team": "****"}
    assert created["headers"] == masked
    assert (await api.ok("GET", f"/v1/subscriptions/{created['id']}"))["headers"] == masked
    listed = await api.ok("GET", "/v1/subscriptions")
    assert {s["id"]: s["headers"] for s in listed["data"]}[created["id"]] == masked

    values = _values(api_settings, created["id"], on_topic=1)
    assert values, "the subscription's record is on the topic"
    assert TOKEN.encode() not in values[-1]
    assert b"ops" not in values[-1]
    res = api.client.app[RESOURCES]
    stored = res.codec.codec.decode_subscription(values[-1])
    assert stored.headers == {}
    opened = {
        name: res.secrets.open_header(sealed, subscription_id=stored.id, name=name)
        for name, sealed in stored.sealed_headers.items()
    }
    assert opened == {"Authorization": TOKEN, "X-Team": "ops"}


async def test_a_record_with_clear_header_values_is_masked_and_sealed_on_its_next_write(
    api: Api, api_settings: Settings
) -> None:
    res = api.client.app[RESOURCES]
    sub_id = str(uuid.uuid4())
    older: Subscription = subscription(
        sub_id,
        "task.*",
        at=utc_ms(datetime.now(UTC)),
        tenant="default",
        headers={"Authorization": TOKEN},
    )
    secret = res.secrets.seal("whsec_" + "A" * 43, subscription_id=sub_id)
    older = dataclasses.replace(older, secrets=(StoredSecret(secret, None),))
    await res.producer.send(
        api_settings.topic("subscriptions"),
        key=sub_id,
        value=res.codec.codec.encode_subscription(older),
    )
    eventually(lambda: res.subscriptions.get(sub_id) is not None, "the table read it")
    read = await api.ok("GET", f"/v1/subscriptions/{sub_id}")
    assert read["headers"] == {"Authorization": "****"}

    await api.ok("PATCH", f"/v1/subscriptions/{sub_id}", json={"description": "touched"})
    values = _values(api_settings, sub_id, on_topic=3)
    assert len(values) == 2
    assert TOKEN.encode() in values[0], "the older record held the value in clear"
    assert TOKEN.encode() not in values[1]
    resealed = res.codec.codec.decode_subscription(values[1])
    assert resealed.headers == {}
    assert (
        res.secrets.open_header(
            resealed.sealed_headers["Authorization"], subscription_id=sub_id, name="Authorization"
        )
        == TOKEN
    )
