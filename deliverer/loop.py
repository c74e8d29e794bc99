"""The deliverer's shell over its ports: wait for the subscriptions table, then turn.

A turn is short: poll Kafka without blocking, hand commands to the dispatcher, apply
back-pressure, tick the producer and commits, feed the backlog. On `stopping` it stops
fetching, hands over queued work, lets running attempts end (each by its deadline), commits
and closes. Everything it talks to comes in `Ports` (`deliverer.bootstrap` builds the real
ones, `tests/fakes.py` the in-memory ones).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Final

from core.records import epoch_ms
from deliverer.backlog import BacklogStore
from deliverer.disabling import Disabler
from deliverer.dispatch import Dispatcher
from deliverer.errors import SubscriptionsUnavailable
from deliverer.kafka_io import KafkaIO
from deliverer.metrics import DelivererMetrics
from deliverer.ports import Ports
from deliverer.requests import SigningKeys
from hookline.runtime.errors import TopicError
from hookline.runtime.settings import Settings

POLL_BATCH: Final = 500
IDLE_S: Final = 0.005
DRAIN_MARGIN_S: Final = 5.0
READY_TIMEOUT_S: Final = 120.0
GAUGE_INTERVAL_S: Final = 0.25


class DeliveryLoop:
    """Delivers until `stopping` is set (`run`); `start`, `turn` and `stop` are its steps."""

    def __init__(
        self,
        settings: Settings,
        metrics: DelivererMetrics,
        ports: Ports,
        *,
        keys: SigningKeys,
        ready: threading.Event,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._ports = ports
        self._ready = ready
        self._clock = ports.clock
        self.io = KafkaIO(
            settings,
            ports.codec,
            metrics,
            consumer=ports.consumer,
            tier_consumer=ports.tier_consumer,
            producer=ports.producer,
            commits=ports.commits,
            clock=ports.clock,
        )
        self._store = BacklogStore(ports.store_path)
        subscriptions = ports.subscriptions
        disabler = Disabler(
            log=ports.subscription_log,
            lookup=subscriptions.get,
            codec=ports.codec,
            send=self.io.send,
            events_topic=settings.topic("events"),
            metrics=metrics,
        )
        self.dispatcher = Dispatcher(
            settings,
            io=self.io,
            sender=ports.sender,
            lookup=subscriptions.get,
            keys=keys,
            codec=ports.codec,
            disabler=disabler,
            metrics=metrics,
            store=self._store,
            restore=ports.restore,
            clock=ports.clock,
        )
        self._measured = 0.0

    async def run(self, stopping: threading.Event) -> None:
        try:
            if not await self._table_ready(stopping):
                return
            await self.start()
            while not stopping.is_set():
                read = self.turn()
                await asyncio.sleep(0 if read else IDLE_S)
            await self.stop()
        finally:
            await self.close()

    async def start(self) -> None:
        await self._ports.sender.start()
        self._check_partitions()
        self.io.subscribe(self.dispatcher)
        self._ready.set()

    def turn(self) -> int:
        """One pass of the loop; how many records it read. Raises what stops the process."""
        dispatcher, io = self.dispatcher, self.io
        self._raise_failure()
        items = io.poll(POLL_BATCH)
        for item in items:
            dispatcher.submit(item)
        budget = self._settings.max_in_flight
        if dispatcher.in_flight >= budget:
            io.pause_all("full")
        elif dispatcher.in_flight < budget * 3 // 4:
            io.unpause_all("full")
        io.tick()
        dispatcher.feed()
        clock = self._clock.monotonic()
        if clock - self._measured >= GAUGE_INTERVAL_S:
            self._measured = clock
            metrics = self._metrics
            metrics.in_flight.set(dispatcher.in_flight)
            metrics.lane_depth.set(dispatcher.lane_depth)
            oldest = dispatcher.oldest_queued_ms
            now_ms = epoch_ms(self._clock.now())
            metrics.lane_oldest_age.set(0 if oldest is None else (now_ms - oldest) / 1000)
            metrics.lanes.set(dispatcher.lanes)
            metrics.backlog_depth.set(dispatcher.backlog_depth)
        return len(items)

    async def stop(self) -> None:
        """Drain: queued commands to the backlog, running attempts end, outputs acknowledged."""
        await self.dispatcher.drain(timeout_s=self._settings.delivery_timeout_s + DRAIN_MARGIN_S)
        self._raise_failure()

    async def close(self) -> None:
        """Flush, commit the finished prefix, leave the groups, close the store and sender."""
        self._ready.clear()
        try:
            self.io.close()
        finally:
            self._store.close()
            await self._ports.sender.close()

    def _raise_failure(self) -> None:
        for failure in (
            self.dispatcher.failure,
            self.io.failure,
            self._ports.subscriptions.failure,
        ):
            if failure is not None:
                raise failure

    async def _table_ready(self, stopping: threading.Event) -> bool:
        subscriptions = self._ports.subscriptions
        waited = 0.0
        while not subscriptions.ready:
            if subscriptions.failure is not None:
                raise subscriptions.failure
            if stopping.is_set():
                return False
            if waited > READY_TIMEOUT_S:
                raise SubscriptionsUnavailable(f"did not catch up in {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)
            waited += 0.05
        return True

    def _check_partitions(self) -> None:
        """The backlog's changelog must mirror `deliveries` partition for partition (0 when
        it is missing: a deployment upgraded without `hookline topics ensure`)."""
        io = self.io
        deliveries, backlog = io.partition_count(io.deliveries), io.partition_count(io.backlog)
        if deliveries != backlog:
            raise TopicError(
                io.backlog,
                f"has {backlog} partitions where {io.deliveries} has {deliveries}; they must"
                " match (run `hookline topics ensure`)",
            )
