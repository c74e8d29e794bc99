"""Unit tests of the deliverer's exception mapping: each failure gets its TransportError kind."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from core.outcome import is_quick_retryable
from deliverer.errors import RefusedAddress
from deliverer.sender import transport_error

KEY = ConnectionKey("example.com", 443, True, True, None, None, None)


def test_timeouts() -> None:
    assert transport_error(TimeoutError()).kind == "timeout"
    assert transport_error(aiohttp.ServerTimeoutError()).kind == "timeout"


def test_dns_and_connect_errors_are_quick_retryable() -> None:
    dns = transport_error(aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "no such name")))
    connect = transport_error(aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "no")))
    assert (dns.kind, connect.kind) == ("dns", "connect")
    assert is_quick_retryable(dns)
    assert is_quick_retryable(connect)


def test_refusals_are_found_however_aiohttp_wraps_them() -> None:
    refused = RefusedAddress("evil.example", "10.0.0.1", "10.0.0.1 is private")
    assert transport_error(refused).kind == "refused_target"
    assert transport_error(aiohttp.ClientConnectorDNSError(KEY, refused)).kind == "refused_target"
    assert transport_error(aiohttp.ClientConnectorError(KEY, refused)).kind == "refused_target"
    assert not is_quick_retryable(transport_error(refused))


def test_responses_that_break_off_are_protocol_errors() -> None:
    assert transport_error(aiohttp.ServerDisconnectedError()).kind == "protocol"
    assert transport_error(aiohttp.ClientPayloadError("cut")).kind == "protocol"
    assert transport_error(aiohttp.InvalidURL("http://")).kind == "protocol"


def test_bugs_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        transport_error(KeyError("bug"))


def test_unusable_urls_fail_the_attempt_instead_of_crashing() -> None:
    assert transport_error(ValueError("bad host")).kind == "protocol"
