"""Unit tests of the webhook body and headers (core.webhook) and delivery ids (core.ids)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import orjson
import pytest

from core.errors import InvalidCustomHeader
from core.ids import DELIVERY_NAMESPACE, delivery_id
from core.webhook import format_timestamp, render_body, webhook_headers

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
