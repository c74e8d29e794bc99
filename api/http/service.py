"""The admin API as a service of the one-process platform: its own event loop in `run`."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from api.http.connections import ConnectionGate, ConnectionLimits
from hookline.runtime.errors import PortTaken
from hookline.runtime.settings import Settings, env_name, flag_name


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class ApiService:
    """Serves the admin API on `settings.api_host:api_port` until `stopping` is set, every
    connection through a `ConnectionGate` (its cap and head deadline) and aiohttp's
    keep-alive timer set to `api_idle_timeout_s`."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._app = create_app(settings, registry)
        self._registry = registry
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
        settings = self._settings
        runner = web.AppRunner(
            self._app, access_log=None, keepalive_timeout=settings.api_idle_timeout_s
        )
        await runner.setup()
        assert runner.server is not None
        limits = ConnectionLimits(settings.api_max_connections, settings.api_header_timeout_s)
        gate = ConnectionGate(runner.server, limits, self._registry)
        listener = None
        try:
            listener = await _listen(gate, settings)
            self._port = int(listener.sockets[0].getsockname()[1])
            self._ready.set()
            await asyncio.to_thread(stopping.wait)
        finally:
            self._ready.clear()
            if listener is not None:
                listener.close()  # accept no more; the runner then drains the open ones
            await runner.cleanup()


async def _listen(
    protocol: Callable[[], asyncio.BaseProtocol], settings: Settings
) -> asyncio.Server:
    """The API's listening socket; a port in use is the user's to change, so it is said in
    one line naming how (a traceback would hide that)."""
    try:
        return await asyncio.get_running_loop().create_server(
            protocol, settings.api_host, settings.api_port
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(
            settings.api_host,
            settings.api_port,
            flag=flag_name("api_port"),
            variable=env_name("api_port"),
        ) from None
