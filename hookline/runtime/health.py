"""`/metrics`, `/healthz` and `/readyz` of one service process on a port of its own, and the
one line it prints once ready: how every `hookline <service>` command runs its service.

aiohttp rather than prometheus_client's `start_http_server`: that server answers metrics on
every path and nothing else, so health and readiness would need a hand-written WSGI router
over its private classes; aiohttp is already the API's server, and its runner binds port 0
and reports the port it got. `hookline up` does not use this: its API serves all three.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hookline.runtime.collector import tune_collector
from hookline.runtime.errors import MetricsPortUnavailable
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import Service, stop_on_signals

READY_CHECK_S: Final = 0.1
STOP_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Observed:
    """What a service command tells about itself: its name, what it consumes (for the ready
    line) and its default port."""

    name: str
    consumes: str
    default_port: int


@dataclass(slots=True)
class _Watch:
    """The service as its endpoint sees it: ready, and why its loop failed (if it did)."""

    service: Service
    failure: BaseException | None = None


class HealthServer:
    """Serves `/metrics`, `/healthz` (503 once the loop failed) and `/readyz` (503 until the
    service is ready: assigned and caught up) on its own thread and event loop."""

    def __init__(self, watch: _Watch, registry: CollectorRegistry) -> None:
        self._watch = watch
        self._registry = registry
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self, host: str, port: int) -> int:
        """Listen on `host:port` (0: any free port); the bound port. MetricsPortUnavailable
        when it is taken or not allowed."""
        started: Future[int] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(host, port, started), name="hookline-health", daemon=True
        )
        self._thread.start()
        return started.result()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _run(self, host: str, port: int, started: Future[int]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(host, port, started))
        finally:
            loop.close()

    async def _serve(self, host: str, port: int, started: Future[int]) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                started.set_exception(MetricsPortUnavailable(host, port, exc.strerror or str(exc)))
                return
            self._stop = asyncio.Event()
            started.set_result(int(runner.addresses[0][1]))
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        failure = self._watch.failure
        if failure is not None:
            return web.json_response({"status": "failed", "error": str(failure)}, status=503)
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready = self._watch.service.ready
        return web.json_response(
            {"status": "ready" if ready else "not ready"}, status=200 if ready else 503
        )


@dataclass(slots=True)
class _Announcer:
    """Prints `line()` once, on stdout, when the service first reports ready (made then, so
    it can name what is only known once serving: a port bound as 0), and then tunes the
    garbage collector: what start-up built is frozen (`hookline.runtime.collector`)."""

    service: Service
    line: Callable[[], str]
    stopping: threading.Event

    def start(self) -> None:
        threading.Thread(target=self._run, name="hookline-ready", daemon=True).start()

    def _run(self) -> None:
        while not self.stopping.wait(READY_CHECK_S):
            if self.service.ready:
                print(self.line(), flush=True)
                tune_collector()
                return


def run_announced(service: Service, line: Callable[[], str]) -> int:
    """Run `service` in this (the main) thread until SIGTERM or SIGINT, printing `line` once
    it is ready (the API, whose own port serves its health and metrics); exit code 0."""
    stopping = threading.Event()
    stop_on_signals(stopping)
    _Announcer(service, line, stopping).start()
    service.run(stopping)
    return 0


def run_observed(
    observed: Observed, service: Service, settings: Settings, registry: CollectorRegistry
) -> int:
    """Run `service` in this (the main) thread until SIGTERM or SIGINT, with its endpoint
    on `HOOKLINE_METRICS_HOST:HOOKLINE_METRICS_PORT` (or its default port), its consumer
    and its ready line; exit code 0. The loop's failure turns
    `/healthz` to 503 and then propagates, ending the process as before."""
    watch = _Watch(service)
    server = HealthServer(watch, registry)
    port = settings.metrics_port if settings.metrics_port is not None else observed.default_port
    bound = server.start(settings.metrics_host, port)
    stopping = threading.Event()
    stop_on_signals(stopping)
    line = f"{observed.name} ready: {observed.consumes}, metrics on {settings.metrics_host}:{bound}"
    _Announcer(service, lambda: line, stopping).start()
    try:
        service.run(stopping)
    except BaseException as exc:
        watch.failure = exc
        raise
    finally:
        stopping.set()
        server.stop()
    return 0
