"""The API's connection guard and its share of the open-files limit, without a server: where
a request head ends, what a refused connection is told, how many are admitted, and the
arithmetic that leaves the rest of the process its descriptors."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from api.http.connections import ConnectionGate, ConnectionLimits, head_ended, refusal
from hookline.runtime.errors import SettingsError
from hookline.runtime.openfiles import connection_cap
from hookline.runtime.settings import Settings
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("reads", "ends_at"),
    [
        ([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"], 0),
        ([b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"\r\n"], 2),
        ([b"GET / HTTP/1.1\r\nHost: a\r", b"\n\r", b"\n"], 2),  # the end split over reads
        ([b'GET / HTTP/1.1\r\nHost: a\r\n\r\n{"body": 1}'], 0),
        ([b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"X-Slow: 1\r\n"], None),
        ([b"\r\n", b"\r"], None),
    ],
)
def test_the_end_of_a_head_is_found_across_reads(reads: list[bytes], ends_at: int | None) -> None:
    tail = b""
    ended = [False] * len(reads)
    for i, data in enumerate(reads):
        ended[i], tail = head_ended(tail, data)
    assert next((i for i, end in enumerate(ended) if end), None) == ends_at
    assert len(tail) <= 3


def test_a_refused_connection_is_told_why_in_one_complete_answer() -> None:
    head, _, body = refusal(100).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert "Connection: close" in lines
    assert f"Content-Length: {len(body)}" in lines
    problem = orjson.loads(body)
    assert problem["status"] == 503
    assert problem["type"].endswith("/too-many-connections")
    assert "100" in problem["detail"]


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class FakeProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.made = False
        self.data = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


async def test_the_gate_admits_up_to_its_cap_refuses_the_next_and_frees_a_closed_slot() -> None:
    inners: list[FakeProtocol] = []

    def inner() -> FakeProtocol:
        inners.append(FakeProtocol())
        return inners[-1]

    registry = CollectorRegistry()
    gate = ConnectionGate(inner, ConnectionLimits(2, header_timeout_s=60), registry)
    connections = [gate() for _ in range(3)]
    transports = [FakeTransport() for _ in range(3)]
    for connection, transport in zip(connections, transports, strict=True):
        connection.connection_made(transport)  # type: ignore[arg-type]

    assert [i.made for i in inners] == [True, True]
    assert transports[2].written.startswith(b"HTTP/1.1 503 ")
    assert transports[2].closed
    connections[2].data_received(b"GET / HTTP/1.1\r\n\r\n")  # a refused one reaches no one
    connections[0].data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert inners[0].data == b"GET / HTTP/1.1\r\n\r\n"
    assert registry.get_sample_value("hookline_api_connections") == 2
    assert registry.get_sample_value("hookline_api_connections_refused_total") == 1

    connections[1].connection_lost(None)
    connections[2].connection_lost(None)  # the refused one held no slot
    assert inners[1].lost
    assert registry.get_sample_value("hookline_api_connections") == 1
    late = gate()
    late.connection_made(FakeTransport())  # type: ignore[arg-type]
    assert len(inners) == 3
    assert inners[2].made
    for connection in (connections[0], late):
        connection.connection_lost(None)
    assert registry.get_sample_value("hookline_api_connections") == 0


def test_the_cap_leaves_the_reserve_and_never_exceeds_the_setting() -> None:
    assert connection_cap(4096, 20_000, reserved=1536) == 4096
    assert connection_cap(1_000_000, 20_000, reserved=1536) == 18_464
    assert connection_cap(4096, resource.RLIM_INFINITY, reserved=1536) == 4096
    with pytest.raises(SettingsError, match="HOOKLINE_API_MAX_CONNECTIONS: the open-files limit"):
        connection_cap(4096, 1024, reserved=1536)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    raised = subprocess.run(
        [
            sys.executable,
            "-c",
            "import hookline.runtime.openfiles as o; print(o.raise_open_files_limit())",
        ],
        preexec_fn=lower,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    limit = int(raised.stdout)
    assert limit > low or low == hard
    if hard != resource.RLIM_INFINITY:
        assert limit == hard


def test_the_guard_settings_have_bounded_defaults_and_are_read_from_the_environment() -> None:
    defaults = Settings.load(environ={})
    assert defaults.api_header_timeout_s == 10.0
    assert defaults.api_body_timeout_s == 30.0
    assert defaults.api_idle_timeout_s == 30.0
    assert defaults.api_max_connections == 4096
    settings = Settings.load(
        environ={
            "HOOKLINE_API_HEADER_TIMEOUT_S": "2.5",
            "HOOKLINE_API_BODY_TIMEOUT_S": "5",
            "HOOKLINE_API_IDLE_TIMEOUT_S": "75",
            "HOOKLINE_API_MAX_CONNECTIONS": "100",
        }
    )
    assert (settings.api_header_timeout_s, settings.api_body_timeout_s) == (2.5, 5.0)
    assert (settings.api_idle_timeout_s, settings.api_max_connections) == (75.0, 100)
    with pytest.raises(SettingsError, match="HOOKLINE_API_MAX_CONNECTIONS"):
        Settings.load(environ={"HOOKLINE_API_MAX_CONNECTIONS": "0"})
    with pytest.raises(SettingsError, match="HOOKLINE_API_HEADER_TIMEOUT_S"):
        Settings.load(environ={"HOOKLINE_API_HEADER_TIMEOUT_S": "0"})
