"""The served admin API (`ApiService`, as `hookline api` and `up` run it) against hostile
clients: heads that never end, more connections than its cap, bodies that never arrive and
connections left idle. Before the guard, the first two held a descriptor each for an hour."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from api.http.service import ApiService
from hookline.runtime.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration

PARTIAL_HEAD = b"GET /readyz HTTP/1.1\r\nHost: api\r\nX-Slow: "


@dataclass(frozen=True, slots=True)
class Served:
    port: int
    registry: CollectorRegistry

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def readyz(self, via: http.client.HTTPConnection | None = None) -> int:
        """The status of GET /readyz, on `via` (kept alive) or on a connection of its own."""
        conn = via or self.connection()
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            if via is None:
                conn.close()

    def metric(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0

    def socket(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setblocking(False)
        return sock


@contextmanager
def served(api_settings: Settings, **changes: Any) -> Iterator[Served]:
    """The API on a port of its own, with `changes` to its settings, until the block ends."""
    registry = CollectorRegistry()
    service = ApiService(api_settings.with_changes(api_port=0, **changes), registry)
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,), name="test-api")
    thread.start()
    try:
        eventually(lambda: service.ready or not thread.is_alive(), "the API serves", timeout_s=60)
        assert service.port is not None, "the API stopped before it served"
        api = Served(service.port, registry)
        eventually(lambda: api.readyz() == 200, "the API is ready", timeout_s=60)
        yield api
    finally:
        stopping.set()
        thread.join(60)
        assert not thread.is_alive()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed `sock` (end of stream or reset), without consuming data."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes `sock` (within the socket's timeout)."""
    sock.settimeout(30)
    chunks: list[bytes] = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_heads_that_never_end_are_closed_while_readyz_answers(api_settings: Settings) -> None:
    with served(api_settings) as api, ExitStack() as held:  # the default deadlines
        slow = [held.enter_context(api.socket()) for _ in range(300)]
        for sock in slow:
            sock.sendall(PARTIAL_HEAD)

        def all_closed() -> bool:
            assert api.readyz() == 200, "/readyz stopped answering"
            return all(closed_by_server(sock) for sock in slow)

        eventually(
            all_closed,
            "the server closes 300 connections whose head never ends",
            timeout_s=60,
            interval_s=0.5,
            detail=lambda: sum(not closed_by_server(sock) for sock in slow),
        )
        assert api.metric("hookline_api_header_timeouts_total") == 300
        eventually(lambda: api.metric("hookline_api_connections") == 0, "every slot freed")


def test_a_connection_past_the_cap_is_refused_while_admitted_ones_are_served(
    api_settings: Settings,
) -> None:
    with (
        served(api_settings, api_max_connections=8, api_header_timeout_s=300) as api,
        ExitStack() as held,
    ):
        admitted = held.enter_context(closing(api.connection()))
        assert api.readyz(via=admitted) == 200
        holders = [held.enter_context(api.socket()) for _ in range(7)]
        eventually(lambda: api.metric("hookline_api_connections") == 8, "8 connections admitted")

        past_cap = held.enter_context(api.socket())
        answer = read_to_end(past_cap)  # the server closes it at once, saying why
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer
        assert orjson.loads(body)["type"].endswith("/too-many-connections")
        assert api.metric("hookline_api_connections_refused_total") == 1

        first_socket = admitted.sock
        assert api.readyz(via=admitted) == 200  # the admitted client is still served...
        assert admitted.sock is first_socket  # ...on the same connection
        assert not any(closed_by_server(sock) for sock in holders)

        holders.pop().close()  # a freed slot admits the next client
        eventually(lambda: api.readyz() == 200, "a new connection is served once one closed")


def test_a_body_that_never_arrives_is_answered_408(api_settings: Settings) -> None:
    assert api_settings.admin_token is not None
    with served(api_settings, api_body_timeout_s=1) as api, api.socket() as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + api_settings.admin_token.value.encode() + b"\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"type": "ta'
        )
        answer = read_to_end(sock)  # answered, then closed: the body can never complete
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        problem = orjson.loads(body)
        assert problem["type"].endswith("/request-timeout")
        assert "1 s" in problem["detail"]


def test_an_idle_keep_alive_connection_is_closed(api_settings: Settings) -> None:
    with served(api_settings, api_idle_timeout_s=1) as api:
        conn = api.connection()
        try:
            assert api.readyz(via=conn) == 200
            sock = conn.sock
            assert sock is not None
            sock.setblocking(False)
            eventually(lambda: closed_by_server(sock), "the idle connection is closed")
        finally:
            conn.close()
        eventually(lambda: api.metric("hookline_api_connections") == 0, "its slot freed")
