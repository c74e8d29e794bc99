"""A table whose reader stopped is noticed: /healthz answers 503 naming it, and the replayer
stops with the table's error. Regression: a dead table thread was never noticed (healthz
answered ok, the replayer ran jobs on a frozen table)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from api.replayer.service import Replayer
from core.records import Subscription
from hookline.runtime.codecs import open_codec
from hookline.runtime.errors import TableError
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.topics import ensure_topics
from schemas.records_avro import RecordCodec
from tests.conftest import Services
from tests.factories import subscription
from tests.integration.api.conftest import drop_schema, make_settings

pytestmark = pytest.mark.integration

POISON = "poison"


@pytest.fixture
def poisonable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscriptions described "poison" make decoding fail with a bug (not an undecodable
    record, which is skipped): the reader of every table built after this cannot go on."""
    decode = RecordCodec.decode_subscription

    def decode_or_fail(codec: RecordCodec, value: bytes) -> Subscription:
        sub = decode(codec, value)
        if sub.description == POISON:
            raise RuntimeError("a decode hook with a bug")
        return sub

    monkeypatch.setattr(RecordCodec, "decode_subscription", decode_or_fail)


@pytest.fixture
def own_settings(services: Services) -> Iterator[Settings]:
    settings = make_settings(services)
    ensure_topics(settings)
    yield settings
    drop_schema(settings)


class _ReplayerThread:
    def __init__(self, settings: Settings) -> None:
        self.service = Replayer(settings, CollectorRegistry())
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self.service.run(self.stopping)
        except BaseException as exc:  # noqa: BLE001  (the test asserts what it was)
            self.error = exc


def _poison(settings: Settings) -> None:
    runtime = open_codec(settings, client_id="test-poison")
    writer = SubscriptionLog(settings, runtime.codec, client_id="test-poison")
    try:
        writer.put(dataclasses.replace(subscription("poisoned", "task.*"), description=POISON))
    finally:
        writer.close()
        runtime.close()


@pytest.mark.usefixtures("poisonable")
async def test_a_stopped_table_fails_healthz_and_stops_the_replayer(own_settings: Settings) -> None:
    replayer = _ReplayerThread(own_settings)
    replayer.thread.start()
    app = create_app(own_settings, CollectorRegistry())
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/healthz")
            assert response.status == 200, await response.text()

            _poison(own_settings)

            deadline = time.monotonic() + 30
            while (response := await client.get("/healthz")).status == 200:
                assert time.monotonic() < deadline, "healthz still answers ok"
                await asyncio.sleep(0.05)
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            problem = await response.json()
            assert problem["status"] == 503
            assert "the subscriptions table stopped" in problem["detail"]
            assert "a decode hook with a bug" in problem["detail"]

            ready = await client.get("/readyz")
            assert ready.status == 503
            assert (await ready.json())["checks"]["subscriptions"] is False

        await asyncio.to_thread(replayer.thread.join, 30)
        assert not replayer.thread.is_alive(), "the replayer kept running on a dead table"
        assert isinstance(replayer.error, TableError), replayer.error
        assert replayer.error.topic == own_settings.topic("subscriptions")
    finally:
        replayer.stopping.set()
        await asyncio.to_thread(replayer.thread.join, 30)
