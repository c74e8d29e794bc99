"""The admin API's guard on its connections: a cap on how many are open, and a deadline on a
new connection's first request head. aiohttp has neither (its keep-alive timer is the only
clock on a connection, and by default it runs for an hour), so one slow client per file
descriptor could take a whole process down.

`ConnectionGate` wraps aiohttp's protocol factory (`AppRunner.server`) for
`loop.create_server`: each accepted connection is either admitted and handed to aiohttp's
own protocol, or answered 503 and closed at once when the cap is reached. Past the first
head, aiohttp's keep-alive timer (`keepalive_timeout`) bounds the wait for each next head.
The API speaks plain HTTP (TLS ends at the proxy in front), so the end of a head is the
first empty line on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.model.errors import PROBLEM_TYPE_BASE

HEAD_END: Final = b"\r\n\r\n"


def head_ended(tail: bytes, data: bytes) -> tuple[bool, bytes]:
    """Whether `data`, read after `tail` (the last bytes seen), completes a request head; and
    the tail to keep for the next read. The end may straddle two reads."""
    seen = tail + data
    return HEAD_END in seen, seen[-(len(HEAD_END) - 1) :]


def refusal(max_connections: int) -> bytes:
    """The whole answer to a connection past the cap: a 503 problem that closes it."""
    body = orjson.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "too-many-connections",
            "title": "Too many connections",
            "status": 503,
            "detail": f"this API process serves at most {max_connections} connections",
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "hookline_api_connections", "admin API connections open", registry=registry
        )
        self.refused = Counter(
            "hookline_api_connections_refused",
            "admin API connections answered 503 and closed: the cap was reached",
            registry=registry,
        )
        self.head_timeouts = Counter(
            "hookline_api_header_timeouts",
            "admin API connections closed before their first request head was complete",
            registry=registry,
        )


class ConnectionGate:
    """The protocol factory of the API's listening socket: admits up to `max_connections`
    connections at a time into `inner` (aiohttp's factory) and refuses the rest at once."""

    def __init__(
        self,
        inner: Callable[[], asyncio.Protocol],
        limits: ConnectionLimits,
        registry: CollectorRegistry,
    ) -> None:
        self._inner = inner
        self.limits = limits
        self._open = 0
        self._metrics = _Metrics(registry)
        self._refusal = refusal(limits.max_connections)

    def __call__(self) -> asyncio.Protocol:
        return _GuardedConnection(self)

    def admit(self) -> asyncio.Protocol | None:
        """aiohttp's protocol for one more connection, or None past the cap."""
        if self._open >= self.limits.max_connections:
            self._metrics.refused.inc()
            return None
        self._open += 1
        self._metrics.open.set(self._open)
        return self._inner()

    def release(self) -> None:
        self._open -= 1
        self._metrics.open.set(self._open)

    def refuse(self, transport: asyncio.Transport) -> None:
        transport.write(self._refusal)
        transport.close()

    def head_timed_out(self, transport: asyncio.Transport) -> None:
        self._metrics.head_timeouts.inc()
        transport.close()


class _GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol behind the cap, closed when its first head is late."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's is not a subclass: no isinstance
        self._inner = self._gate.admit()
        if self._inner is None:
            self._gate.refuse(stream)
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(
            self._gate.limits.header_timeout_s, self._gate.head_timed_out, stream
        )
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # refused: its answer is on the way and the transport closing
        if self._deadline is not None:
            ended, self._tail = head_ended(self._tail, data)
            if ended:
                self._deadline.cancel()
                self._deadline = None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._inner is not None:
            self._gate.release()
            self._inner.connection_lost(exc)
            self._inner = None
