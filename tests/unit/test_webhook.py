"""Unit tests of the webhook body and headers (core.webhook) and delivery ids (core.ids)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from urllib.parse import parse_qs

import orjson
import pytest

from core.errors import InvalidCustomHeader
from core.ids import DELIVERY_NAMESPACE, delivery_id
from core.webhook import (
    encode_body,
    format_timestamp,
    logged_headers,
    render_body,
    webhook_headers,
)

OCCURRED = datetime(2025, 3, 4, 12, 5, 6, 789_654, tzinfo=UTC)


def render(*, with_actor: bool = True) -> bytes:
    return render_body(
        type="task.created",
        occurred_at=OCCURRED,
        tenant="acme",
        subject={"kind": "task", "id": "t-1"},
        actor={"kind": "user", "id": "u-9"} if with_actor else None,
        data={"title": "Grüße", "n": 3, "tags": ["a", "b"]},
    )


def test_body_bytes_are_exact() -> None:
    assert render() == (
        b'{"type":"task.created","timestamp":"2025-03-04T12:05:06.789Z","tenant":"acme",'
        b'"subject":{"kind":"task","id":"t-1"},"actor":{"kind":"user","id":"u-9"},'
        b'"data":{"title":"Gr\xc3\xbc\xc3\x9fe","n":3,"tags":["a","b"]}}'
    )


def test_body_field_order_and_null_actor() -> None:
    parsed = orjson.loads(render(with_actor=False))
    assert list(parsed) == ["type", "timestamp", "tenant", "subject", "actor", "data"]
    assert parsed["actor"] is None


def test_body_accepts_read_only_nested_mappings() -> None:
    body = render_body(
        type="t",
        occurred_at=OCCURRED,
        tenant="x",
        subject=MappingProxyType({"id": "s"}),
        actor=None,
        data=MappingProxyType({"inner": MappingProxyType({"k": 1})}),
    )
    assert orjson.loads(body)["data"] == {"inner": {"k": 1}}


def test_body_rejects_unserialisable_values() -> None:
    with pytest.raises(TypeError):
        render_body(
            type="t", occurred_at=OCCURRED, tenant="x", subject={}, actor=None, data={"x": object()}
        )


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (OCCURRED, "2025-03-04T12:05:06.789Z"),
        (datetime(2025, 1, 1, tzinfo=UTC), "2025-01-01T00:00:00.000Z"),
        (
            datetime(2025, 1, 1, 2, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2))),
            "2025-01-01T00:00:00.999Z",
        ),
    ],
)
def test_timestamp_is_utc_milliseconds_with_z(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime(2025, 1, 1))


def test_headers() -> None:
    headers = webhook_headers(
        msg_id="evt-1",
        timestamp_s=1_700_000_000,
        signature="v1,abc v1,def",
        version="0.1.0",
        custom={"Authorization": "Bearer t", "X-Team": "blue"},
    )
    assert headers == {
        "content-type": "application/json",
        "user-agent": "hookline/0.1.0",
        "webhook-id": "evt-1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,abc v1,def",
        "Authorization": "Bearer t",
        "X-Team": "blue",
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/plain"),
        ("content-type", "text/plain"),
        ("Webhook-Signature", "v1,forged"),
        ("webhook-id", "other"),
        ("WEBHOOK-TIMESTAMP", "0"),
        ("Webhook-Anything", "x"),
        ("User-Agent", "evil"),
        ("Host", "internal"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("X-Ok", "a\r\nX-Injected: 1"),
        ("X-Ok", "a\nb"),
        ("X-Ok", "nul\x00"),
        ("Bad Name", "x"),
        ("Bad:Name", "x"),
        ("", "x"),
    ],
)
def test_custom_headers_cannot_override_or_inject(name: str, value: str) -> None:
    with pytest.raises(InvalidCustomHeader) as caught:
        webhook_headers(
            msg_id="evt-1", timestamp_s=1, signature="v1,x", version="0", custom={name: value}
        )
    assert caught.value.name == name


def test_delivery_id_is_deterministic_uuid5() -> None:
    first = delivery_id("evt-1", "sub-1")
    assert first == delivery_id("evt-1", "sub-1")
    parsed = uuid.UUID(first)
    assert parsed.version == 5
    assert str(parsed) == first
    assert first == str(uuid.uuid5(DELIVERY_NAMESPACE, "5:evt-1:sub-1"))


def test_delivery_id_distinguishes_pairs() -> None:
    ids = {
        delivery_id("evt-1", "sub-1"),
        delivery_id("evt-1", "sub-2"),
        delivery_id("evt-2", "sub-1"),
        delivery_id("a:b", "c"),
        delivery_id("a", "b:c"),
        delivery_id("sub-1", "evt-1"),
    }
    assert len(ids) == 6


def test_delivery_namespace_never_changes() -> None:
    # Regression guard: a new namespace would re-key every stored delivery.
    assert str(DELIVERY_NAMESPACE) == "e618c6a6-638b-45fa-9b8c-424966ad9841"


def test_changes_follow_data_and_are_left_out_when_absent() -> None:
    """Regression: `changes` was accepted on publish and never reached the webhook body."""
    with_changes = render_body(
        type="task.assigned",
        occurred_at=OCCURRED,
        tenant="acme",
        subject={"type": "task", "id": "t-1"},
        actor=None,
        data={"assignee_id": "u-2"},
        changes={"assignee_id": {"from": "u-1", "to": "u-2"}},
    )
    parsed = orjson.loads(with_changes)
    assert list(parsed)[-2:] == ["data", "changes"]
    assert parsed["changes"] == {"assignee_id": {"from": "u-1", "to": "u-2"}}
    assert "changes" not in orjson.loads(render())


def test_the_form_body_holds_the_json_in_payload() -> None:
    payload = render()
    assert encode_body(payload, "application/json") is payload
    form = encode_body(payload, "application/x-www-form-urlencoded")
    assert form.startswith(b"payload=%7B%22type%22")
    assert parse_qs(form.decode("ascii"), strict_parsing=True) == {"payload": [payload.decode()]}


def test_the_content_type_header_follows_the_subscription() -> None:
    headers = webhook_headers(
        msg_id="e",
        timestamp_s=1,
        signature="v1,x",
        version="0",
        custom={},
        content_type="application/x-www-form-urlencoded",
    )
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_logged_headers_redact_signatures_and_custom_values() -> None:
    logged = logged_headers(
        [
            ("Host", "example.com"),
            ("Content-Type", "application/json"),
            ("webhook-id", "evt-1"),
            ("webhook-signature", "v1,c2ln v1a,b3RoZXI="),
            ("X-Api-Key", "k3y"),
            ("x-api-key", "again"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ]
    )
    assert logged == {
        "host": "example.com",
        "content-type": "application/json",
        "webhook-id": "evt-1",
        "webhook-signature": "v1,<redacted> v1a,<redacted>",
        "x-api-key": "<redacted>, <redacted>",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
