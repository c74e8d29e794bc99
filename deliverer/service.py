"""The deliverer service: `Deliverer(settings, registry).run(stopping)` runs its own event
loop over what `deliverer.bootstrap` builds (`hookline deliverer`, `hookline up`, the tests)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from prometheus_client import CollectorRegistry

from deliverer.bootstrap import bootstrap
from deliverer.metrics import DelivererMetrics
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.settings import Settings


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
        self._settings = settings
        self._client_id = client_id or f"hookline-deliverer-{uuid.uuid4().hex[:8]}"
        self._metrics = DelivererMetrics(registry)
        self._lag = ConsumerLag.of(registry)
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        loop = new_event_loop()
        try:
            with bootstrap(
                self._settings,
                self._metrics,
                lag=self._lag,
                client_id=self._client_id,
                ready=self._ready,
            ) as delivery:
                loop.run_until_complete(delivery.run(stopping))
        finally:
            self._ready.clear()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
