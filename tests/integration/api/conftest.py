"""Fixtures of the API tests: settings of a module's own (topics, database schema), the app
on a test server, and helpers to call it as the admin or a tenant."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from prometheus_client import CollectorRegistry
from psycopg import sql

from api.http.app import create_app
from api.model.db import connect
from api.projector.projection import apply_batch, from_command
from api.replayer.service import Replayer
from core.ids import delivery_id
from core.records import DeliveryCommand, utc_ms
from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Secret, Settings
from hookline.runtime.supervisor import Service, Supervisor
from hookline.runtime.topics import ensure_topics
from tests.conftest import REPO, Services, TopicJanitor


def make_settings(services: Services, **changes: Any) -> Settings:
    settings = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        database_url=Secret(services.database_url),
        admin_token=Secret("test-admin-token-" + uuid.uuid4().hex),
        secret_key=Secret("VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="),
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=3,
        replication_factor=1,
        min_insync_replicas=1,
        allowed_target_networks=(),
        data_dir=REPO / ".hookline" / "test",
    )
    return settings.with_changes(**changes)


@contextmanager
def pipeline_settings(services: Services) -> Iterator[Settings]:
    """Settings of a module's own pipeline: its own topics (ensured) and database schema
    (dropped after), webhooks allowed to loopback receivers, quick timeouts and retries."""
    settings = make_settings(
        services,
        allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        delivery_timeout_s=3.0,
        retry_delays_s=(0.2, 0.2),
    )
    ensure_topics(settings)
    try:
        yield settings
    finally:
        drop_schema(settings)


def pipeline_services(settings: Settings) -> list[Service]:
    """Router, deliverer, projector and replayer on one registry: what a publish through the
    API needs to be delivered and seen in the history."""
    from api.projector.service import Projector
    from deliverer.service import Deliverer
    from router.service import Router

    registry = CollectorRegistry()
    return [
        Router(settings, registry),
        Deliverer(settings, registry),
        Projector(settings, registry),
        Replayer(settings, registry),
    ]


def drop_schema(settings: Settings) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.value, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(settings.topic_prefix)
            )
        )


@pytest.fixture(scope="module")
def api_settings(services: Services, topic_janitor: TopicJanitor) -> Iterator[Settings]:
    """One prefix (topics and database schema) for a whole test module."""
    settings = make_settings(services)
    ensure_topics(settings)
    yield settings
    drop_schema(settings)
    prefix = f"{settings.topic_prefix}."
    topic_janitor.delete(lambda name: name.startswith(prefix))


class Api:
    """A test client that sends the admin token unless told otherwise."""

    def __init__(self, client: TestClient[Any, Any], admin_token: str) -> None:
        self.client = client
        self.admin = admin_token

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: object = None,
        data: bytes | None = None,
        anonymous: bool = False,
        params: dict[str, str] | None = None,
    ) -> ClientResponse:
        headers = {} if anonymous else {"Authorization": f"Bearer {token or self.admin}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        body = None if data is None else io.BytesIO(data)  # large raw bytes warn in aiohttp
        return await self.client.request(
            method, path, headers=headers, json=json, data=body, params=params
        )

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        body = await response.text()
        assert response.status == status, body
        return await response.json() if body else None

    async def tenant_token(self, tenant: str) -> str:
        body = await self.ok("POST", f"/v1/tenants/{tenant}/tokens", 201)
        token: str = body["token"]
        return token


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    app = create_app(api_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert api_settings.admin_token is not None
        yield Api(client, api_settings.admin_token.value)


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    """The replayer's metrics (its jobs ended, by kind and status)."""
    return CollectorRegistry()


@pytest.fixture(scope="module")
def replayer(api_settings: Settings, registry: CollectorRegistry) -> Iterator[Replayer]:
    """A replayer in a thread of this process for the module's tests, stopped at the end."""
    service = Replayer(api_settings, registry)
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,))
    thread.start()
    yield service
    stopping.set()
    thread.join(30)
    assert not thread.is_alive()


def subscription_body(**changes: Any) -> dict[str, Any]:
    """A valid create body; each to a URL of its own, so no test meets the per-URL quota
    unless it means to."""
    body: dict[str, Any] = {
        "url": f"https://example.com/hooks/{uuid.uuid4().hex[:12]}",
        "event_types": ["task.*"],
        "description": "test",
    }
    body.update(changes)
    return body


def read_records(
    settings: Settings, topic: str, *, count: int, timeout_s: float = 30.0
) -> list[Message]:
    """The first `count` records of `topic` (all partitions), waiting up to `timeout_s`."""
    consumer = Consumer(reader_config(settings, client_id=f"test-{uuid.uuid4().hex[:6]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.2):
                if message.error() is None:
                    found.append(message)
        return found
    finally:
        consumer.close()


def command(
    *,
    subscription_id: str,
    tenant: str = "default",
    event_type: str = "task.created",
    **changes: Any,
) -> DeliveryCommand:
    """A delivery command as the router makes it, for tests that write history themselves."""
    event_id = str(uuid.uuid4())
    now = utc_ms(datetime.now(UTC))
    base = DeliveryCommand(
        delivery_id=delivery_id(event_id, subscription_id),
        event_id=event_id,
        event_type=event_type,
        tenant=tenant,
        subscription_id=subscription_id,
        occurred_at=now,
        payload=b'{"type":"task.created"}',
        attempt=0,
        created_at=now,
        not_before=None,
        origin="route",
        job_id=None,
        last_error=None,
    )
    return dataclasses.replace(base, **changes)


def write_history(settings: Settings, commands: list[DeliveryCommand]) -> None:
    """History rows written straight through the projection (no projector running)."""
    conn = connect(settings)
    try:
        apply_batch(conn, [from_command(c) for c in commands], [], [])
    finally:
        conn.close()


@contextmanager
def running(services: Sequence[Service]) -> Iterator[None]:
    """The services in threads of one `Supervisor`, in the test's own process: ready before
    the block, stopped and joined after it; a service that fails fails the test."""
    supervisor = Supervisor([(type(service).__name__, service) for service in services])
    supervisor.start()
    try:
        not_ready = supervisor.wait_ready(60)
        assert not not_ready, f"not ready: {not_ready}, failed: {supervisor.failures}"
        yield
    finally:
        supervisor.stopping.set()
        assert not supervisor.join(30), "a service did not stop"
    assert not supervisor.failures, supervisor.failures
