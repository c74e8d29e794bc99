"""The deliverer's request headers (deliverer.requests): custom header values sealed at rest
are opened for the request, and records written before sealing keep their clear values."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime

from core.records import DeliveryCommand, StoredSecret, Subscription
from core.secretbox import SecretBox
from core.signing import generate_secret
from deliverer.requests import SigningKeys, request_headers
from tests.factories import subscription

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
BOX = SecretBox(os.urandom(32))


def signed(sub_id: str, *, clear: dict[str, str], sealed: dict[str, str]) -> Subscription:
    return dataclasses.replace(
        subscription(sub_id, "task.created"),
        headers=clear,
        sealed_headers={
            name: BOX.seal_header(value, subscription_id=sub_id, name=name)
            for name, value in sealed.items()
        },
        secrets=(StoredSecret(BOX.seal(generate_secret(), subscription_id=sub_id), None),),
    )


def command(sub: Subscription) -> DeliveryCommand:
    return DeliveryCommand(
        delivery_id="d1",
        event_id="e1",
        event_type="task.created",
        tenant=sub.tenant,
        subscription_id=sub.id,
        occurred_at=T0,
        payload=b"{}",
        created_at=T0,
    )


def test_sealed_and_clear_custom_headers_are_sent_in_clear() -> None:
    sub = signed("s1", clear={"X-Legacy": "old"}, sealed={"Authorization": "Bearer t0k3n"})
    keys = SigningKeys(BOX)
    cmd = command(sub)
    headers = request_headers(sub, cmd, body=cmd.payload, secrets=keys.valid(sub, T0))
    assert headers["Authorization"] == "Bearer t0k3n"
    assert headers["X-Legacy"] == "old"
    assert headers["webhook-signature"].startswith("v1,")


def test_new_header_values_are_opened_again() -> None:
    """The cache of opened values follows the record: a changed value is never sent stale."""
    keys = SigningKeys(BOX)
    before = signed("s1", clear={}, sealed={"Authorization": "Bearer one"})
    assert keys.valid(before, T0).headers == {"Authorization": "Bearer one"}
    after = dataclasses.replace(
        before,
        sealed_headers={
            "Authorization": BOX.seal_header(
                "Bearer two", subscription_id="s1", name="authorization"
            )
        },
    )
    assert keys.valid(after, T0).headers == {"Authorization": "Bearer two"}
