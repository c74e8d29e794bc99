"""A webhook receiver for tests, benchmarks and the demo: a real aiohttp server on 127.0.0.1.

Each path answers with a configured `Behaviour` (answer, fail N times, answer slowly, hang,
trickle, huge body, redirect to itself); every request is verified against the secrets given
and recorded with its headers. `async with Receiver(...) as receiver:` serves on a free port.
`python -m hookline.app.receiver --port N` serves 200 on every path without recording (the
benchmark runs it in its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, TypeAlias, assert_never

from aiohttp import web

from core.errors import SignatureError
from core.signing import verify

CHUNK_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer every request with `status` (and `headers`, e.g. Retry-After)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True, slots=True)
class FailThenAnswer:
    """Answer the first `failures` requests of each webhook-id with `status`, then 200."""

    failures: int
    status: int = 500


@dataclass(frozen=True, slots=True)
class Slow:
    """Answer 200 after `delay_s` (an endpoint's own pace)."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class Hang:
    """Accept the request and never answer (until the receiver stops)."""


@dataclass(frozen=True, slots=True)
class Trickle:
    """Answer 200 with a body that sends one byte every `interval_s`, forever."""

    interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class HugeBody:
    """Answer `status` with a body of `size_bytes`, streamed in chunks (never held in memory)."""

    size_bytes: int = 100 * 1024 * 1024
    status: int = 500


@dataclass(frozen=True, slots=True)
class RedirectToSelf:
    """Answer `status` with a Location pointing at the same URL."""

    status: int = 307


Behaviour: TypeAlias = Answer | FailThenAnswer | Slow | Hang | Trickle | HugeBody | RedirectToSelf


@dataclass(frozen=True, slots=True)
class Received:
    """One request as received; `verified` is True when a configured secret verifies it."""

    webhook_id: str
    path: str
    body: bytes
    headers: Mapping[str, str]
    verified: bool
    received_at: float  # time.time()


class Receiver:
    """Serves `behaviours` by path (others get `default`), verifying with `secrets` (whsec_)."""

    def __init__(
        self,
        *,
        behaviours: Mapping[str, Behaviour] | None = None,
        default: Behaviour | None = None,
        secrets: Sequence[str] = (),
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.behaviours: dict[str, Behaviour] = dict(behaviours or {})
        self.default = default if default is not None else Answer()
        self.secrets = list(secrets)
        self.record = record
        self.received: list[Received] = []
        self.count = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.busy_s = 0.0
        self._host = host
        self._port = port
        self._seen: Counter[tuple[str, str]] = Counter()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return f"http://{self._host}:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what arrived ----------------------------------------------------------------------

    def ids(self, path: str | None = None) -> list[str]:
        return [r.webhook_id for r in self.received if path is None or r.path == path]

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    # -- serving ---------------------------------------------------------------------------

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        try:
            msg_id = headers["webhook-id"]
            timestamp_s = int(headers["webhook-timestamp"])
            signature = headers["webhook-signature"]
        except (KeyError, ValueError):
            return False
        for secret in self.secrets:
            try:
                verify(
                    msg_id=msg_id,
                    timestamp_s=timestamp_s,
                    body=body,
                    signature_header=signature,
                    secret=secret,
                    now_s=int(time.time()),
                )
            except SignatureError:
                continue
            return True
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        self.count += 1
        if self.record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(
                Received(
                    webhook_id,
                    request.path,
                    body,
                    headers,
                    self._verified(headers, body),
                    time.time(),
                )
            )
        behaviour = self.behaviours.get(request.path, self.default)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        started = time.monotonic()
        try:
            return await self._behave(behaviour, request, webhook_id)
        finally:
            self.in_flight -= 1
            self.busy_s += time.monotonic() - started

    async def _behave(  # noqa: PLR0911 - one return per behaviour
        self, behaviour: Behaviour, request: web.Request, webhook_id: str
    ) -> web.StreamResponse:
        match behaviour:
            case Answer(status=status, headers=headers, body=body):
                return web.Response(status=status, headers=dict(headers), body=body)
            case FailThenAnswer(failures=failures, status=status):
                key = (request.path, webhook_id)
                self._seen[key] += 1
                if self._seen[key] <= failures:
                    return web.Response(status=status, text="failing on purpose")
                return web.Response(text="ok")
            case Slow(delay_s=delay_s):
                await asyncio.sleep(delay_s)
                return web.Response(text="ok")
            case Hang():
                await self._stopping.wait()
                return web.Response(status=503)
            case Trickle(interval_s=interval_s):
                return await self._trickle(request, interval_s)
            case HugeBody(size_bytes=size_bytes, status=status):
                return await self._huge(request, size_bytes, status)
            case RedirectToSelf(status=status):
                return web.Response(status=status, headers={"Location": str(request.url)})
            case _:
                assert_never(behaviour)

    async def _trickle(self, request: web.Request, interval_s: float) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        while not self._stopping.is_set():
            try:
                await response.write(b".")
            except ConnectionError:
                break
            await asyncio.sleep(interval_s)
        return response

    async def _huge(self, request: web.Request, size_bytes: int, status: int) -> web.StreamResponse:
        response = web.StreamResponse(status=status)
        response.content_length = size_bytes
        await response.prepare(request)
        chunk = b"x" * CHUNK_BYTES
        sent = 0
        while sent < size_bytes and not self._stopping.is_set():
            piece = chunk[: size_bytes - sent]
            try:
                await response.write(piece)
            except ConnectionError:
                break
            sent += len(piece)
        return response


async def _serve(port: int) -> None:
    async with Receiver(record=False, port=port) as receiver:
        print(f"receiver listening on {receiver.url()}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="a webhook receiver answering 200")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args.port))
    except ImportError:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
