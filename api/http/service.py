"""The admin API as a service of the one-process platform: its own event loop in `run`."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from hookline.runtime.settings import Settings


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class ApiService:
    """Serves the admin API on `settings.api_host:api_port` until `stopping` is set."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._app = create_app(settings, registry)
        self._ready = threading.Event()
        self._port: int | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def port(self) -> int | None:
        """The bound port (useful with port 0), once serving."""
        return self._port

    def run(self, stopping: threading.Event) -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(self._serve(stopping))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, stopping: threading.Event) -> None:
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.api_host, self._settings.api_port)
            await site.start()
            address = runner.addresses[0]
            self._port = int(address[1])
            self._ready.set()
            await asyncio.to_thread(stopping.wait)
        finally:
            self._ready.clear()
            await runner.cleanup()
