"""The deliverer service: `Deliverer(settings, registry).run(stopping)` runs its own event
loop over what `deliverer.bootstrap` builds (`hookline deliverer`, `hookline up`, the tests)."""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from typing import Final

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


GC_THRESHOLDS: Final = (50_000, 20, 20)
"""New objects before a young collection, then collections of each generation before the
next older one is collected too; CPython's defaults are (700, 10, 10)."""


def quiet_collector() -> None:
    """Fewer, shorter cyclic garbage collections for a deliverer process. Process-wide: call
    it once, at start-up, from the process's entry point (never from a test or a library).

    Each attempt allocates a few hundred objects (aiohttp's request and response, the
    records), nearly all freed by reference counting once its response is in. At CPython's
    default thresholds the collector ran ~60 times a second at 500-1,000 deliveries/s,
    promoted the attempts in flight into the older generations and then scanned the whole
    heap for them: a third of the process's CPU, and pauses of up to 360 ms that every
    attempt in flight waited out (gc.callbacks, during the end-to-end benchmark). What is
    loaded by now (modules, classes, functions) is collected once and frozen out of every
    later scan, and a young collection waits for 50,000 new objects: in the same benchmark,
    two of ~30 ms in 45 s of load. At 10,000 a backlog held in memory made each young
    collection rescan it: ~80 of ~18 ms, and a 130 ms middle one."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
