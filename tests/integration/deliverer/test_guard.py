"""The SSRF guard at the resolver and connector level, against a real receiver on 127.0.0.1:
a name whose answers include one refused address is refused, the connection goes to the
address that was checked, and IP literals are judged although aiohttp skips the resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from core.outcome import Response, TransportError
from deliverer.errors import RefusedAddress
from deliverer.guard import guarded_socket_factory
from deliverer.sender import Sender
from hookline.app.receiver import Receiver
from tests.integration.deliverer.conftest import FakeDNS

pytestmark = pytest.mark.integration

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)


async def _post(sender: Sender, url: str) -> Response | TransportError:
    attempted = await sender.post(url, headers={}, body=b"{}", deadline_s=5.0)
    return attempted.outcome


async def test_a_name_with_one_private_answer_is_refused() -> None:
    dns = FakeDNS({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    sender = Sender(allowed=LOCAL, resolver_inner=dns)
    await sender.start()
    try:
        outcome = await _post(sender, "http://mixed.example/hook")
    finally:
        await sender.close()
    assert isinstance(outcome, TransportError)
    assert outcome.kind == "refused_target"
    assert "10.0.0.7" in outcome.message
    assert dns.asked == ["mixed.example"], "refusals are not retried quickly"


async def test_the_connection_goes_to_the_checked_address() -> None:
    async with Receiver() as receiver:
        dns = FakeDNS({"hooks.example": ["127.0.0.1"]})
        sender = Sender(allowed=LOCAL, resolver_inner=dns)
        await sender.start()
        try:
            outcome = await _post(sender, f"http://hooks.example:{receiver.port}/in")
        finally:
            await sender.close()
        assert outcome == Response(200, None)
        [got] = receiver.received
        assert got.headers["host"] == f"hooks.example:{receiver.port}"


async def test_loopback_answers_are_refused_without_the_allowance() -> None:
    async with Receiver() as receiver:
        dns = FakeDNS({"rebind.example": ["127.0.0.1"]})
        sender = Sender(allowed=(), resolver_inner=dns)
        await sender.start()
        try:
            outcome = await _post(sender, f"http://rebind.example:{receiver.port}/in")
        finally:
            await sender.close()
        assert isinstance(outcome, TransportError)
        assert outcome.kind == "refused_target"
        assert receiver.received == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "0177.0.0.1", "[::1]", "127.1"],
)
async def test_ip_literals_and_numeric_oddities_are_refused(host: str) -> None:
    async with Receiver() as receiver:
        sender = Sender(allowed=())
        await sender.start()
        try:
            outcome = await _post(sender, f"http://{host}:{receiver.port}/in")
        finally:
            await sender.close()
        assert isinstance(outcome, TransportError)
        assert outcome.kind == "refused_target", outcome
        assert receiver.received == []


def test_the_socket_factory_refuses_the_address_it_would_connect_to() -> None:
    factory = guarded_socket_factory(())
    with pytest.raises(RefusedAddress):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)))
    with pytest.raises(RefusedAddress):
        factory((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.0.0.1", 80, 0, 0)))
    allowed = guarded_socket_factory(LOCAL)
    sock = allowed((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    sock.close()
