"""The deliverer service: its own event loop in `run(stopping)`, the composition root.

The loop is short: poll Kafka without blocking, hand commands to the lanes, apply
back-pressure, tick the producer and commits. On `stopping` it stops fetching, hands over
queued work, lets running attempts end (each by its deadline), commits and closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import Final

from prometheus_client import CollectorRegistry

from core.secretbox import SecretBox
from deliverer.backlog import BacklogStore
from deliverer.disabling import Disabler
from deliverer.dispatch import Dispatcher
from deliverer.errors import SubscriptionsUnavailable
from deliverer.kafka_io import KafkaIO
from deliverer.metrics import DelivererMetrics
from deliverer.requests import SigningKeys
from deliverer.sender import Sender
from hookline.runtime.codecs import open_codec
from hookline.runtime.errors import TopicError
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

POLL_BATCH: Final = 500
IDLE_S: Final = 0.005
DRAIN_MARGIN_S: Final = 5.0
READY_TIMEOUT_S: Final = 120.0
GAUGE_INTERVAL_S: Final = 0.25


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Deliverer:
    """Delivers until `stopping` is set; `ready` once its subscriptions table caught up."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, *, client_id: str | None = None
    ) -> None:
        settings.require("kafka_bootstrap", "secret_key")
        assert settings.secret_key is not None
        self._settings = settings
        self._box = SecretBox.from_base64(settings.secret_key.value)
        self._client_id = client_id or f"hookline-deliverer-{uuid.uuid4().hex[:8]}"
        self._metrics = DelivererMetrics(registry)
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        runtime = open_codec(self._settings, client_id=self._client_id)
        table = SubscriptionTable(
            self._settings, runtime.codec, client_id=f"{self._client_id}-subscriptions"
        )
        sublog = SubscriptionLog(
            self._settings, runtime.codec, client_id=f"{self._client_id}-disable"
        )
        loop = new_event_loop()
        try:
            table.start()
            loop.run_until_complete(self._main(stopping, runtime.codec, table, sublog))
        finally:
            self._ready.clear()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            table.close()
            sublog.close()
            runtime.close()

    async def _main(
        self,
        stopping: threading.Event,
        codec: RecordCodec,
        table: SubscriptionTable,
        sublog: SubscriptionLog,
    ) -> None:
        if not await self._table_ready(stopping, table):
            return
        sender = Sender(allowed=self._settings.allowed_target_networks)
        await sender.start()
        io = KafkaIO(self._settings, codec, self._metrics, client_id=self._client_id)
        store = BacklogStore(
            self._settings.data_dir / "deliverer" / f"{self._client_id}.backlog.sqlite"
        )
        try:
            _check_partitions(io)
            disabler = Disabler(
                log=sublog,
                lookup=table.get,
                codec=codec,
                send=io.send,
                events_topic=self._settings.topic("events"),
                metrics=self._metrics,
            )
            dispatcher = Dispatcher(
                self._settings,
                io=io,
                sender=sender,
                lookup=table.get,
                keys=SigningKeys(self._box),
                codec=codec,
                disabler=disabler,
                metrics=self._metrics,
                store=store,
                client_id=self._client_id,
            )
            io.subscribe(dispatcher)
            self._ready.set()
            await self._pump(stopping, table, io, dispatcher)
            await dispatcher.drain(timeout_s=self._settings.delivery_timeout_s + DRAIN_MARGIN_S)
            if dispatcher.failure is not None:
                raise dispatcher.failure
        finally:
            self._ready.clear()
            io.close()
            store.close()
            await sender.close()

    async def _table_ready(self, stopping: threading.Event, table: SubscriptionTable) -> bool:
        waited = 0.0
        while not table.ready:
            if table.failure is not None:
                raise table.failure
            if stopping.is_set():
                return False
            if waited > READY_TIMEOUT_S:
                raise SubscriptionsUnavailable(f"did not catch up in {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)
            waited += 0.05
        return True

    async def _pump(
        self,
        stopping: threading.Event,
        table: SubscriptionTable,
        io: KafkaIO,
        dispatcher: Dispatcher,
    ) -> None:
        budget = self._settings.max_in_flight
        metrics = self._metrics
        measured = 0.0
        while not stopping.is_set():
            if dispatcher.failure is not None:
                raise dispatcher.failure
            if table.failure is not None:
                raise table.failure
            items = io.poll(POLL_BATCH)
            for item in items:
                dispatcher.submit(item)
            if dispatcher.in_flight >= budget:
                io.pause_all("full")
            elif dispatcher.in_flight < budget * 3 // 4:
                io.unpause_all("full")
            io.tick()
            dispatcher.feed()
            clock = time.monotonic()
            if clock - measured >= GAUGE_INTERVAL_S:
                measured = clock
                metrics.in_flight.set(dispatcher.in_flight)
                metrics.lane_depth.set(dispatcher.lane_depth)
                metrics.lanes.set(dispatcher.lanes)
                metrics.backlog_depth.set(dispatcher.backlog_depth)
            await asyncio.sleep(0 if items else IDLE_S)


def _check_partitions(io: KafkaIO) -> None:
    """The backlog's changelog must mirror `deliveries` partition for partition (0 when it is
    missing: a deployment upgraded without `hookline topics ensure`)."""
    deliveries, backlog = io.partition_count(io.deliveries), io.partition_count(io.backlog)
    if deliveries != backlog:
        raise TopicError(
            io.backlog,
            f"has {backlog} partitions where {io.deliveries} has {deliveries}; they must match"
            " (run `hookline topics ensure`)",
        )
