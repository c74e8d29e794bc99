"""What one attempt records of its exchange, against a real receiver on 127.0.0.1: the
headers as aiohttp sent them, the response's headers, and the time of each phase, measured
by aiohttp's request tracing (a fresh connection has a lookup and a connect, a pooled one
neither)."""

from __future__ import annotations

import ipaddress

import pytest

from core.outcome import Response
from deliverer.sender import Sender
from hookline.app.receiver import Answer, Receiver
from tests.integration.deliverer.conftest import FakeDNS

pytestmark = pytest.mark.integration

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)


async def test_an_attempt_observes_its_request_response_and_phases() -> None:
    answer = Answer(status=202, headers={"X-Receiver": "yes"}, body=b"accepted")
    async with Receiver(default=answer) as receiver:
        sender = Sender(allowed=LOCAL, resolver_inner=FakeDNS({"hooks.example": ["127.0.0.1"]}))
        await sender.start()
        url = f"http://hooks.example:{receiver.port}/in"
        try:
            first = await sender.post(
                url, headers={"webhook-id": "e-1"}, body=b'{"n":1}', deadline_s=5.0
            )
            pooled = await sender.post(
                url, headers={"webhook-id": "e-2"}, body=b'{"n":2}', deadline_s=5.0
            )
        finally:
            await sender.close()
    assert first.outcome == Response(202, None)
    seen = first.observed
    sent = dict(seen.request_headers)
    assert sent["webhook-id"] == "e-1"
    assert sent["Host"] == f"hooks.example:{receiver.port}", "as aiohttp sent them"
    assert sent["Content-Length"] == "7"
    assert seen.request_body == b'{"n":1}'
    assert ("X-Receiver", "yes") in seen.response_headers
    assert seen.response_body == b"accepted"
    timings = seen.timings
    assert timings.dns_ms is not None
    assert timings.connect_ms is not None
    assert timings.ttfb_ms is not None
    assert timings.ttfb_ms <= seen.duration_ms
    # the second request reuses the pooled connection and the cached name
    assert (pooled.observed.timings.dns_ms, pooled.observed.timings.connect_ms) == (None, None)
    assert pooled.observed.timings.ttfb_ms is not None


async def test_a_request_that_never_left_records_what_was_to_be_sent() -> None:
    sender = Sender(allowed=LOCAL)
    await sender.start()
    try:
        # nothing listens on port 9 of loopback (discard): the connect is refused
        attempted = await sender.post(
            "http://127.0.0.1:9/in", headers={"webhook-id": "e-3"}, body=b"{}", deadline_s=5.0
        )
    finally:
        await sender.close()
    assert attempted.observed.status_code is None
    assert dict(attempted.observed.request_headers) == {"webhook-id": "e-3"}
    assert attempted.observed.timings.ttfb_ms is None
