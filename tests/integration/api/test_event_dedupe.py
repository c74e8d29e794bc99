"""Publishing one event id twice: the same content is one event, other content is refused,
each tenant's ids are its own, and the record of ids forgets by age and by a per-tenant cap."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from api.http.context import RESOURCES
from api.model.published import claim, forget
from core.event_dedupe import PublishedContent, content_digest
from core.records import DomainEvent, Ref
from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Settings
from schemas.records_avro import RecordCodec
from tests.integration.api.conftest import Api

pytestmark = pytest.mark.integration


def _event(
    event_id: str, subject: str, *, title: str = "A", tenant: str = "acme"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "task.created",
        "tenant": tenant,
        "subject": {"type": "task", "id": subject},
        "data": {"id": subject, "title": title, "project_id": "p-1"},
    }


def _events_until(api: Api, settings: Settings, sentinel: str) -> list[DomainEvent]:
    """Every event on the topic up to the one with id `sentinel` (all partitions read)."""
    codec: RecordCodec = api.client.app[RESOURCES].codec.codec
    topic = settings.topic("events")
    consumer = Consumer(reader_config(settings, client_id=f"test-{uuid.uuid4().hex[:6]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[DomainEvent] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.2):
                if message.error() is None:
                    found.append(codec.decode_event(message.value() or b""))
            if any(e.id == sentinel for e in found):
                return found
        raise AssertionError(f"the sentinel {sentinel} never arrived")
    finally:
        consumer.close()


async def _publish_sentinel(api: Api, subject: str) -> str:
    """An event after the others on the same subject (so the same partition, in order)."""
    sentinel = str(uuid.uuid4())
    await api.ok("POST", "/v1/events", 202, json=_event(sentinel, subject))
    return sentinel


async def test_the_same_id_and_content_again_is_one_event(api: Api, api_settings: Settings) -> None:
    """Regression: each publish of one id was a new event: the webhook-id arrived twice."""
    event_id, subject = str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}"
    first = await api.ok("POST", "/v1/events", 202, json=_event(event_id, subject))
    again = await api.ok("POST", "/v1/events", 202, json=_event(event_id, subject))
    assert first == again == {"id": event_id}
    events = _events_until(api, api_settings, await _publish_sentinel(api, subject))
    assert [e.id for e in events].count(event_id) == 1


async def test_the_same_id_with_other_content_is_409(api: Api, api_settings: Settings) -> None:
    """Regression: a second body under one id was delivered under the same webhook-id."""
    event_id, subject = str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}"
    await api.ok("POST", "/v1/events", 202, json=_event(event_id, subject))
    response = await api.call("POST", "/v1/events", json=_event(event_id, subject, title="B"))
    assert response.status == 409, await response.text()
    problem = await response.json(content_type=None)
    assert problem["event_id"] == event_id
    assert problem["type"].endswith("/event-id-taken")
    events = _events_until(api, api_settings, await _publish_sentinel(api, subject))
    [only] = [e for e in events if e.id == event_id]
    assert only.data["title"] == "A"


async def test_each_tenant_has_its_own_ids(api: Api) -> None:
    event_id, subject = str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}"
    await api.ok("POST", "/v1/events", 202, json=_event(event_id, subject))
    other = _event(event_id, subject, title="B", tenant="other")
    assert await api.ok("POST", "/v1/events", 202, json=other) == {"id": event_id}


async def test_a_publish_kafka_may_not_have_taken_is_sent_again_as_first_published(
    api: Api, api_settings: Settings
) -> None:
    """A first publish recorded but not acknowledged (Kafka failed, or the process died)
    is sent on its retry, with the first publish's `occurred_at`, so the body is the same."""
    event_id, subject = str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}"
    body = _event(event_id, subject)
    first_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    content = PublishedContent(
        type="task.created",
        tenant="acme",
        occurred_at=None,
        subject=Ref("task", subject),
        actor=None,
        data=body["data"],
        changes=None,
    )
    now = datetime.now(UTC)
    pool = api.client.app[RESOURCES].pool
    unsent = await claim(
        pool,
        tenant="acme",
        event_id=event_id,
        digest=content_digest(content),
        occurred_at=first_at,
        now=now,
        window_start=now - timedelta(hours=1),
    )
    assert unsent is None
    await api.ok("POST", "/v1/events", 202, json=body)
    await api.ok("POST", "/v1/events", 202, json=body)
    events = _events_until(api, api_settings, await _publish_sentinel(api, subject))
    [sent] = [e for e in events if e.id == event_id]
    assert sent.occurred_at == first_at


async def test_ids_are_forgotten_by_age_and_over_a_tenants_cap(
    api: Api, api_settings: Settings
) -> None:
    pool = api.client.app[RESOURCES].pool
    tenant, bystander = f"cap-{uuid.uuid4().hex[:8]}", f"by-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for age, event_id in enumerate(ids):
        await claim(
            pool,
            tenant=tenant,
            event_id=event_id,
            digest=b"d",
            occurred_at=now,
            now=now - timedelta(seconds=age),
            window_start=now - timedelta(days=1),
        )
    await claim(
        pool,
        tenant=bystander,
        event_id=str(uuid.uuid4()),
        digest=b"d",
        occurred_at=now,
        now=now - timedelta(hours=2),
        window_start=now - timedelta(days=1),
    )
    await forget(pool, window_start=now - timedelta(hours=1), max_per_tenant=3)
    assert api_settings.database_url is not None
    with psycopg.connect(api_settings.database_url.value) as conn:
        rows = conn.execute(
            f'SELECT tenant, event_id FROM "{api_settings.topic_prefix}".published_events'  # noqa: S608
            " WHERE tenant IN (%s, %s)",
            [tenant, bystander],
        ).fetchall()
    assert sorted(rows) == sorted((tenant, event_id) for event_id in ids[:3])
