"""Ingest admission against the real API, Kafka and PostgreSQL: with no router or deliverer
consuming, the lag is real; past `HOOKLINE_INGEST_MAX_LAG` a heavy tenant is refused while a
light one is still admitted, past twice it everyone is, and once the groups catch up every
publish is admitted again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api.http.app import create_app
from hookline.runtime.kafka import consumer_config, producer_config
from hookline.runtime.settings import Service, Settings
from hookline.runtime.topics import ensure_topics
from tests.conftest import Services, TopicJanitor
from tests.integration.api.conftest import Api, drop_schema, make_settings, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration

LIMIT = 20


@dataclass(frozen=True, slots=True)
class Platform:
    api: Api
    settings: Settings


@pytest_asyncio.fixture(loop_scope="session")
async def platform(services: Services, topic_janitor: TopicJanitor) -> AsyncIterator[Platform]:
    """An API with a small lag limit on topics of its own, nothing consuming them."""
    settings = make_settings(services, ingest_max_lag=LIMIT)
    ensure_topics(settings)
    app = create_app(settings, CollectorRegistry())
    try:
        async with TestClient(TestServer(app)) as client:
            assert settings.admin_token is not None
            yield Platform(Api(client, settings.admin_token.value), settings)
    finally:
        drop_schema(settings)
        prefix = f"{settings.topic_prefix}."
        topic_janitor.delete(lambda name: name.startswith(prefix))


def _event(tenant: str) -> dict[str, Any]:
    n = uuid.uuid4().hex[:8]
    return {
        "type": "task.created",
        "tenant": tenant,
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": "lag", "project_id": "p-1", "assignee_id": None},
    }


async def _metric(api: Api, name: str, labels: dict[str, str]) -> float | None:
    response = await api.call("GET", "/metrics", anonymous=True)
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


async def _lag_reaches(api: Api, stage: str, at_least: int) -> None:
    async def reached() -> bool:
        lag = await _metric(api, "hookline_ingest_lag", {"stage": stage})
        return lag is not None and lag >= at_least

    await eventually_async(reached, f"hookline_ingest_lag{{stage={stage!r}}} >= {at_least}")


async def _lag_falls_to_zero(api: Api, stage: str) -> None:
    async def drained() -> bool:
        return await _metric(api, "hookline_ingest_lag", {"stage": stage}) == 0

    await eventually_async(drained, f"hookline_ingest_lag{{stage={stage!r}}} == 0")


async def _refused(api: Api, tenant: str) -> dict[str, Any]:
    """A publish of `tenant` answered 429 ingest-overloaded with a Retry-After; its problem."""
    response = await api.call("POST", "/v1/events", json=_event(tenant))
    body: dict[str, Any] = await response.json(content_type=None)
    assert response.status == 429, body
    assert response.content_type == "application/problem+json"
    assert body["type"].endswith("/ingest-overloaded"), body  # not the rate's quota-exceeded
    assert body["limit"] == LIMIT
    retry_after_s = int(response.headers["Retry-After"])
    assert 1 <= retry_after_s <= 60
    return body


def _produce_raw(settings: Settings, topic: str, count: int) -> None:
    """Records no service reads: lag as it builds when a stage stops consuming."""
    producer = Producer(producer_config(settings, client_id="test-lag"))
    for n in range(count):
        producer.produce(topic, key=str(n), value=b"not read")
    assert producer.flush(30) == 0


def _catch_up(settings: Settings, service: Service, topic: str) -> None:
    """Commit the ends of `topic` for `<prefix>.<service>`, as its consumers do once they
    have read everything."""
    consumer = Consumer(
        consumer_config(settings, group_id=settings.group(service), client_id="test")
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in partitions
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


async def test_over_the_limit_a_heavy_tenant_is_refused_while_a_light_one_is_admitted(
    platform: Platform,
) -> None:
    api = platform.api
    for _ in range(2):
        await api.ok("POST", "/v1/events", 202, json=_event("light"))
    for _ in range(LIMIT - 2):  # the lag reaches the limit with the last one
        await api.ok("POST", "/v1/events", 202, json=_event("heavy"))
    await _lag_reaches(api, "route", LIMIT)

    refused = await _refused(api, "heavy")
    assert refused["reason"] == "fair_share"
    assert refused["lag"] >= LIMIT
    await api.ok("POST", "/v1/events", 202, json=_event("light"))
    counted = {"reason": "fair_share"}
    assert await _metric(api, "hookline_ingest_refused_total", counted) == 1


async def test_over_twice_the_limit_everyone_is_refused_until_the_lag_drains(
    platform: Platform,
) -> None:
    api, settings = platform.api, platform.settings
    _produce_raw(settings, settings.topic("events"), LIMIT)
    _produce_raw(settings, settings.topic("deliveries"), LIMIT)
    await _lag_reaches(api, "route", LIMIT)
    await _lag_reaches(api, "deliver", LIMIT)

    assert (await _refused(api, "first-publish"))["reason"] == "overloaded"
    assert (await _refused(api, "another"))["reason"] == "overloaded"
    await api.ok("GET", "/v1/subscriptions")  # only publishes are refused

    _catch_up(settings, "router", settings.topic("events"))
    _catch_up(settings, "deliverer", settings.topic("deliveries"))

    async def admitted() -> bool:
        response = await api.call("POST", "/v1/events", json=_event("another"))
        return response.status == 202

    await eventually_async(admitted, "a publish admitted once the groups caught up")


async def test_a_running_router_drains_the_lag_and_publishes_are_admitted_again(
    platform: Platform,
) -> None:
    """The router commits its offsets in its transactions: the sampler reads them as they
    commit (read_uncommitted never waits on a pending one)."""
    from router.service import Router

    api = platform.api
    for _ in range(2 * LIMIT):  # a lone tenant is at its share: refused only from 2 x LIMIT
        await api.ok("POST", "/v1/events", 202, json=_event("alone"))
    await _lag_reaches(api, "route", 2 * LIMIT)
    assert (await _refused(api, "alone"))["reason"] == "overloaded"

    with running([Router(platform.settings, CollectorRegistry())]):
        await _lag_falls_to_zero(api, "route")
        await api.ok("POST", "/v1/events", 202, json=_event("alone"))
