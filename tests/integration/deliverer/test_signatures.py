"""Signatures verify with the independent `standardwebhooks` package and with our verifier:
non-ASCII and 1 MiB bodies, and two signatures while a secret is rotated; custom headers
sealed at rest arrive in clear."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

from core.signing import generate_secret, verify
from hookline.app.receiver import Receiver
from tests.integration.deliverer.conftest import Kit, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


def _check(received_body: bytes, headers: dict[str, str], secret: str) -> None:
    Webhook(secret).verify(received_body, headers)
    verify(
        msg_id=headers["webhook-id"],
        timestamp_s=int(headers["webhook-timestamp"]),
        body=received_body,
        signature_header=headers["webhook-signature"],
        secret=secret,
        now_s=int(time.time()),
    )


async def test_signatures_verify_for_non_ascii_large_and_rotated(kit: Kit) -> None:
    previous = generate_secret()
    async with Receiver() as receiver:
        plain = kit.subscription(receiver.url("/plain"))
        rotated = kit.subscription(receiver.url("/rotated"), previous_secret=previous)
        receiver.secrets = [*kit.secrets[plain.id], *kit.secrets[rotated.id]]
        non_ascii = kit.command(plain, data={"id": "t1", "title": "grüße 🚀 日本語 «ok»"})
        big_title = "é" * (512 * 1024)  # 1 MiB of UTF-8 in the title alone
        large = kit.command(plain, data={"id": "t2", "title": big_title})
        assert len(large.payload) >= 1024 * 1024
        during_rotation = kit.command(rotated)
        kit.send([non_ascii, large, during_rotation])
        async with running(kit.settings):
            await eventually_async(
                lambda: len(receiver.received) >= 3, "len(receiver.received) >= 3", timeout_s=30
            )
        by_id = {r.webhook_id: r for r in receiver.received}
        assert set(by_id) == {non_ascii.event_id, large.event_id, during_rotation.event_id}
        for command in (non_ascii, large, during_rotation):
            got = by_id[command.event_id]
            assert got.body == command.payload, "the bytes signed are the bytes sent"
            assert got.verified
            assert got.headers["content-type"] == "application/json"
            assert got.headers["user-agent"].startswith("hookline/")
        rotated_headers = dict(by_id[during_rotation.event_id].headers)
        assert len(rotated_headers["webhook-signature"].split(" ")) == 2
        for secret in kit.secrets[rotated.id]:  # the new and the previous secret both verify
            _check(by_id[during_rotation.event_id].body, rotated_headers, secret)
        for command in (non_ascii, large):
            got = by_id[command.event_id]
            assert len(got.headers["webhook-signature"].split(" ")) == 1
            _check(got.body, dict(got.headers), kit.secrets[plain.id][0])


async def test_sealed_and_older_clear_custom_headers_arrive_in_clear(kit: Kit) -> None:
    """Header values are sealed on the topic; the deliverer opens them for the request, and
    a record written before sealing (clear values) keeps working."""
    token = "Bearer s3cr3t-" + generate_secret()
    async with Receiver() as receiver:
        sealed = kit.subscription(
            receiver.url("/sealed"), sealed_headers={"Authorization": token, "X-Team": "ops"}
        )
        older = kit.subscription(receiver.url("/older"), headers={"X-Legacy": "clear value"})
        receiver.secrets = [*kit.secrets[sealed.id], *kit.secrets[older.id]]
        assert token.encode() not in kit.codec.encode_subscription(sealed)
        to_sealed, to_older = kit.command(sealed), kit.command(older)
        kit.send([to_sealed, to_older])
        async with running(kit.settings):
            await eventually_async(
                lambda: len(receiver.received) >= 2, "len(receiver.received) >= 2", timeout_s=30
            )
        by_id = {r.webhook_id: r for r in receiver.received}
        got = by_id[to_sealed.event_id]
        assert got.verified
        assert got.headers["authorization"] == token
        assert got.headers["x-team"] == "ops"
        assert by_id[to_older.event_id].headers["x-legacy"] == "clear value"
