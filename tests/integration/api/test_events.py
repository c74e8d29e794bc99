"""Publishing over HTTP: validated against the type's schema, 202 only once Kafka has it."""

from __future__ import annotations

import uuid

import pytest

from api.http.context import RESOURCES
from core.records import DomainEvent
from hookline.runtime.settings import Settings
from schemas.records_avro import RecordCodec
from tests.integration.api.conftest import Api, read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_published_event_is_on_the_topic_keyed_by_subject(
    api: Api, api_settings: Settings
) -> None:
    event_id = str(uuid.uuid4())
    accepted = await api.ok(
        "POST",
        "/v1/events",
        202,
        json={
            "id": event_id,
            "type": "meeting.ended",
            "tenant": "acme",
            "occurred_at": "2025-05-01T10:00:00.123Z",
            "subject": {"type": "meeting", "id": "m-7"},
            "actor": {"type": "user", "id": "u-1"},
            "data": {
                "id": "m-7",
                "title": "Standup",
                "ended_at": "2025-05-01T10:00:00Z",
                "attendee_ids": ["u-1", "u-2"],
            },
            "trace": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
    )
    assert accepted == {"id": event_id}
    generated = await api.ok(
        "POST",
        "/v1/events",
        202,
        json={
            "type": "webhook.ping",
            "subject": {"type": "subscription", "id": "s-1"},
            "data": {"subscription_id": "s-1"},
        },
    )
    uuid.UUID(generated["id"])

    codec: RecordCodec = api.client.app[RESOURCES].codec.codec
    records = read_records(api_settings, api_settings.topic("events"), count=2)
    events = {codec.decode_event(r.value() or b"").id: r for r in records}
    record = events[event_id]
    assert record.key() == b"m-7"
    event = codec.decode_event(record.value() or b"")
    assert event.tenant == "acme"
    assert event.data["attendee_ids"] == ["u-1", "u-2"]
    assert event.actor is not None
    assert event.actor.id == "u-1"
    default = codec.decode_event(events[generated["id"]].value() or b"")
    assert default.tenant == "default"


async def test_tenant_token_publishes_into_its_tenant(api: Api, api_settings: Settings) -> None:
    token = await api.tenant_token("initech")
    accepted = await api.ok(
        "POST",
        "/v1/events",
        202,
        token=token,
        json={
            "type": "task.created",
            "subject": {"type": "task", "id": "t-9"},
            "data": {"id": "t-9", "title": "TPS", "project_id": "p"},
        },
    )
    codec: RecordCodec = api.client.app[RESOURCES].codec.codec

    def published() -> DomainEvent | None:
        records = read_records(
            api_settings, api_settings.topic("events"), count=1000, timeout_s=0.3
        )
        events = {e.id: e for e in (codec.decode_event(r.value() or b"") for r in records)}
        return events.get(accepted["id"])

    event = eventually(published, "the accepted event on the events topic", interval_s=0)
    assert event.tenant == "initech"
