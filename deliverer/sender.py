"""One HTTP attempt: POST within one deadline, redirects not followed, the body read to a cap.

One `Sender` (one aiohttp session, keep-alive pooled) per process. Connection and DNS errors
get a few quick tenacity retries inside the same deadline; everything else is reported as
an `Attempted` value for `core.outcome.classify`. aiohttp's request tracing hands each
attempt what the history keeps of it: the headers as they went out and the time of each
phase (lookup, connect, first byte).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Final

import aiohttp
from aiohttp.payload import BytesIOPayload, BytesPayload, Payload
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from yarl import URL

from core.addresses import IPNetwork
from core.attempts import RESPONSE_BODY_CAP_BYTES, Observed
from core.outcome import AttemptOutcome, Response, TransportError, is_quick_retryable
from core.records import Timings
from deliverer.errors import RefusedAddress
from deliverer.guard import GuardedResolver, check_url, guarded_socket_factory

QUICK_ATTEMPTS: Final = 3
"""Tries per attempt for connection and DNS errors (the request was never sent)."""
QUICK_WAIT_S: Final = 0.05
MAX_CONNECTIONS: Final = 1024
LARGE_BODY_BYTES: Final = 512 * 1024
URL_CACHE_SIZE: Final = 10_000


@dataclass(frozen=True, slots=True)
class Attempted:
    """What one attempt produced: the outcome to classify and the observation to record."""

    outcome: AttemptOutcome
    observed: Observed


def transport_error(exc: BaseException) -> TransportError:  # noqa: PLR0911 - one per kind
    """Map an exception raised while attempting to its TransportError kind."""
    refused = _refusal_in(exc)
    if refused is not None:
        return TransportError("refused_target", refused.reason)
    match exc:
        case TimeoutError():
            return TransportError("timeout", "no complete answer before the deadline")
        case aiohttp.ClientConnectorDNSError():
            return TransportError("dns", str(exc))
        case aiohttp.ClientConnectorCertificateError() | aiohttp.ClientSSLError():
            return TransportError("tls", str(exc))
        case aiohttp.ClientConnectorError():
            return TransportError("connect", str(exc))
        case aiohttp.InvalidURL():
            return TransportError("protocol", f"invalid URL: {exc}")
        case aiohttp.ClientError() | ValueError():
            return TransportError("protocol", f"{type(exc).__name__}: {exc}")
        case _:
            raise exc


def _refusal_in(exc: BaseException) -> RefusedAddress | None:
    """The guard's refusal, whether raised directly or wrapped by aiohttp's connector."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, RefusedAddress):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, RefusedAddress):
            return os_error
        seen = seen.__cause__
    return None


class _Timeline:
    """One attempt's trace: the headers aiohttp sent and when each phase began and ended
    (`time.perf_counter`); the last try's, when connection errors were retried."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sent_headers: tuple[tuple[str, str], ...] | None = None
        self.response_headers: tuple[tuple[str, str], ...] = ()
        self.dns: tuple[float, float] | None = None
        self.connect: tuple[float, float] | None = None
        self.head_at: float | None = None
        self.dns_started = 0.0
        self.connect_started = 0.0

    def timings(self) -> Timings:
        def span_ms(phase: tuple[float, float] | None) -> int | None:
            return None if phase is None else round((phase[1] - phase[0]) * 1000)

        ttfb = None if self.head_at is None else (self.started, self.head_at)
        return Timings(span_ms(self.dns), span_ms(self.connect), span_ms(ttfb))


def _timeline(ctx: SimpleNamespace) -> _Timeline:
    timeline = ctx.trace_request_ctx
    assert isinstance(timeline, _Timeline), "every post passes its timeline"
    return timeline


async def _dns_start(
    _s: object, ctx: SimpleNamespace, _p: aiohttp.TraceDnsResolveHostStartParams
) -> None:
    _timeline(ctx).dns_started = time.perf_counter()


async def _dns_end(
    _s: object, ctx: SimpleNamespace, _p: aiohttp.TraceDnsResolveHostEndParams
) -> None:
    timeline = _timeline(ctx)
    timeline.dns = (timeline.dns_started, time.perf_counter())


async def _connect_start(
    _s: object, ctx: SimpleNamespace, _p: aiohttp.TraceConnectionCreateStartParams
) -> None:
    _timeline(ctx).connect_started = time.perf_counter()


async def _connect_end(
    _s: object, ctx: SimpleNamespace, _p: aiohttp.TraceConnectionCreateEndParams
) -> None:
    timeline = _timeline(ctx)
    timeline.connect = (timeline.connect_started, time.perf_counter())


async def _headers_sent(
    _s: object, ctx: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    _timeline(ctx).sent_headers = tuple(params.headers.items())


async def _head_received(
    _s: object, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    timeline = _timeline(ctx)
    timeline.head_at = time.perf_counter()
    timeline.response_headers = tuple(params.response.headers.items())


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_dns_start)
    config.on_dns_resolvehost_end.append(_dns_end)
    config.on_connection_create_start.append(_connect_start)
    config.on_connection_create_end.append(_connect_end)
    config.on_request_headers_sent.append(_headers_sent)
    config.on_request_end.append(_head_received)
    return config


class _QuickRetry(Exception):
    def __init__(self, error: TransportError) -> None:
        super().__init__(error.message)
        self.error = error


class Sender:
    """Posts webhooks through one pooled session; `start()` inside the event loop."""

    def __init__(
        self,
        *,
        allowed: Sequence[IPNetwork],
        resolver_inner: aiohttp.abc.AbstractResolver | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._allowed = tuple(allowed)
        self._resolver_inner = resolver_inner
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allowed=self._allowed, inner=self._resolver_inner),
            socket_factory=guarded_socket_factory(self._allowed),
            limit=self._max_connections,
            ttl_dns_cache=10,
            keepalive_timeout=10.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,  # no proxy from the environment may bypass the guard
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[_trace_config()],
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, deadline_s: float
    ) -> Attempted:
        """One attempt, over within `deadline_s` whatever the endpoint does."""
        at = datetime.now(UTC)
        timeline = _Timeline(time.perf_counter())
        status: int | None = None
        response_body: bytes | None = None
        try:
            async with asyncio.timeout(deadline_s):
                target = self._checked_url(url)
                status, retry_after, response_body = await self._quick_retries(
                    target, headers, body, timeline
                )
            outcome: AttemptOutcome = Response(status, retry_after)
        except _QuickRetry as exc:
            outcome = exc.error
        except (TimeoutError, aiohttp.ClientError, RefusedAddress, ValueError) as exc:
            # ValueError: a URL or header yarl/aiohttp cannot use; a failed attempt, not a crash
            outcome = transport_error(exc)
            status = None
        duration_ms = round((time.perf_counter() - timeline.started) * 1000)
        observed = Observed(
            at,
            duration_ms,
            status,
            response_body,
            # what left, or, when nothing did, what was to be sent
            request_headers=timeline.sent_headers or tuple(headers.items()),
            request_body=body,
            response_headers=timeline.response_headers,
            timings=timeline.timings(),
        )
        return Attempted(outcome, observed)

    def _checked_url(self, url: str) -> URL:
        """The parsed URL once `check_url` accepted it; remembered, since every attempt to a
        subscription posts to the same URL (addresses are still checked at every connect)."""
        target = self._urls.get(url)
        if target is None:
            target = URL(url)
            check_url(target, allowed=self._allowed)
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = target
        return target

    async def _quick_retries(
        self, url: URL, headers: Mapping[str, str], body: bytes, timeline: _Timeline
    ) -> tuple[int, str | None, bytes]:
        try:  # the common case, without tenacity's per-call setup
            return await self._once(url, headers, body, timeline)
        except (aiohttp.ClientConnectorError, RefusedAddress) as exc:
            if not is_quick_retryable(transport_error(exc)):
                raise
        # the request never left: a few quick tries more, inside the same deadline
        retrying = AsyncRetrying(
            stop=stop_after_attempt(QUICK_ATTEMPTS - 1),
            wait=wait_exponential(multiplier=QUICK_WAIT_S, max=0.5),
            retry=retry_if_exception_type(_QuickRetry),
            reraise=True,
        )
        await asyncio.sleep(QUICK_WAIT_S)
        async for attempt in retrying:
            with attempt:
                try:
                    return await self._once(url, headers, body, timeline)
                except (aiohttp.ClientConnectorError, RefusedAddress) as exc:
                    error = transport_error(exc)
                    if not is_quick_retryable(error):
                        raise
                    raise _QuickRetry(error) from exc
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _once(
        self, url: URL, headers: Mapping[str, str], body: bytes, timeline: _Timeline
    ) -> tuple[int, str | None, bytes]:
        assert self._session is not None, "Sender.start() was not called"
        # A ready payload spares aiohttp its payload-registry lookup per request; a large
        # body goes as a file object, which streams (aiohttp warns raw bytes block the loop)
        data: Payload = (
            BytesIOPayload(io.BytesIO(body)) if len(body) > LARGE_BODY_BYTES else BytesPayload(body)
        )
        async with self._session.post(
            url, data=data, headers=headers, allow_redirects=False, trace_request_ctx=timeline
        ) as response:
            content = await _read_capped(response.content, RESPONSE_BODY_CAP_BYTES)
            if not response.content.at_eof():
                response.close()  # a half-read connection never goes back to the pool
            return response.status, response.headers.get("Retry-After"), content


async def _read_capped(stream: aiohttp.StreamReader, cap_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < cap_bytes:
        chunk = await stream.read(cap_bytes - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
