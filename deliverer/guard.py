"""The SSRF guard in aiohttp's connector: every resolved address and every connect is checked.

Three layers, one rule (`core.addresses`): the URL's host is checked up front when it is an
IP literal (including inet_aton oddities such as `2130706433`, which aiohttp refuses anyway);
`GuardedResolver` refuses a name when any of its answers is refused and returns only checked
addresses, so the connection goes to an address that was checked (no DNS rebinding between
check and connect); and `guarded_socket_factory` checks the very address each socket
connects to, which also covers IP literals (aiohttp skips the resolver for those).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from core.addresses import IPNetwork, Refused, check_address, check_resolved, parse_host_literal
from deliverer.errors import RefusedAddress

SocketFactory = Callable[[tuple[Any, ...]], socket.socket]


def check_url(url: URL, *, allowed: Sequence[IPNetwork]) -> None:
    """Raise RefusedAddress for a URL that is not http(s) or whose literal host is refused."""
    if url.scheme not in ("http", "https") or not url.host:
        raise RefusedAddress(str(url), "", "only http and https URLs with a host are sent")
    refusal = _literal_refusal(url.host, tuple(allowed))
    if refusal is not None:
        raise RefusedAddress(url.host, *refusal)


@functools.lru_cache(maxsize=4096)
def _literal_refusal(host: str, allowed: tuple[IPNetwork, ...]) -> tuple[str, str] | None:
    """(address, reason) when `host` is a refused IP literal; cached: hosts repeat per request."""
    literal = parse_host_literal(host)
    if literal is None:
        return None
    verdict = check_address(literal, allowed=allowed)
    return (str(literal), verdict.reason) if isinstance(verdict, Refused) else None


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (the system resolver by default) and refuses names whose answers
    include any refused address; the caller connects only to the answers returned."""

    def __init__(
        self, *, allowed: Sequence[IPNetwork], inner: AbstractResolver | None = None
    ) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        addresses = [ipaddress.ip_address(answer["host"].partition("%")[0]) for answer in answers]
        verdict = check_resolved(addresses, allowed=self._allowed)
        if isinstance(verdict, Refused):
            raise RefusedAddress(host, ", ".join(map(str, addresses)), verdict.reason)
        return answers

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(allowed: Sequence[IPNetwork]) -> SocketFactory:
    """A socket factory for `TCPConnector(socket_factory=...)` that refuses to create the
    socket when the address it is about to connect to is refused."""
    networks = tuple(allowed)

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        host = str(sockaddr[0])
        address = ipaddress.ip_address(host.partition("%")[0])
        verdict = check_address(address, allowed=networks)
        if isinstance(verdict, Refused):
            raise RefusedAddress(host, host, verdict.reason)
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
