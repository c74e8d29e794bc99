"""The rules a subscription's fields must follow when one is created or updated.

Each check takes the value as parsed from JSON and returns it normalized, or raises
`InvalidField` naming the field. The event-type catalog and the allowed networks are passed
in, so the rules stay free of I/O.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit

from core.addresses import IPNetwork, ensure_literal_host_allowed, normalise_host
from core.errors import InvalidCustomHeader, InvalidField, TargetRefused
from core.matching import WILDCARD
from core.webhook import check_custom_headers

MAX_URL_CHARS: Final = 2048
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_EVENT_TYPES: Final = 100
MAX_HEADERS: Final = 50
MAX_HEADER_VALUE_CHARS: Final = 4096


def check_url(url: str, *, allowed: Sequence[IPNetwork]) -> str:
    """An absolute http(s) URL with a host, at most 2048 characters, not a refused literal."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidField("url", f"longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidField("url", f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidField("url", "the scheme must be https or http")
    if not parts.hostname:
        raise InvalidField("url", "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidField("url", "credentials in the URL are not allowed; use headers")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidField("url", "the URL contains whitespace or control characters")
    try:
        normalise_host(parts.hostname)
    except ValueError as exc:
        raise InvalidField("url", str(exc)) from None
    try:
        # The deliverer's guard reads the host through the same normalisation, so a
        # fullwidth-digit spelling of a refused address is refused here too.
        ensure_literal_host_allowed(parts.hostname, allowed=allowed)
    except TargetRefused as exc:
        raise InvalidField("url", exc.reason) from None
    return url


def check_event_types(
    patterns: Sequence[str], *, catalog: Collection[str], field: str = "event_types"
) -> tuple[str, ...]:
    """Exact catalog names, `noun.*` for a noun some catalog type has, or `*`; no duplicates."""
    if not patterns:
        raise InvalidField(field, "at least one event type or pattern is needed")
    if len(patterns) > MAX_EVENT_TYPES:
        raise InvalidField(field, f"at most {MAX_EVENT_TYPES} entries")
    nouns = {name.split(".", 1)[0] for name in catalog}
    seen: list[str] = []
    for index, pattern in enumerate(patterns):
        where = f"{field}[{index}]"
        if pattern == WILDCARD or pattern in catalog:
            pass
        elif pattern.endswith(".*"):
            if pattern.removesuffix(".*") not in nouns:
                raise InvalidField(where, f"no event type in the catalog matches {pattern!r}")
        else:
            raise InvalidField(where, f"unknown event type {pattern!r}")
        if pattern not in seen:
            seen.append(pattern)
    return tuple(seen)


def check_headers(value: Mapping[str, str]) -> dict[str, str]:
    """Custom headers: HTTP token names, no control characters, none of the protocol's own."""
    if len(value) > MAX_HEADERS:
        raise InvalidField("headers", f"at most {MAX_HEADERS} headers")
    for name, item in value.items():
        if len(item) > MAX_HEADER_VALUE_CHARS:
            raise InvalidField(f"headers.{name}", f"longer than {MAX_HEADER_VALUE_CHARS} chars")
    try:
        check_custom_headers(value)
    except InvalidCustomHeader as exc:
        raise InvalidField(f"headers.{exc.name}", exc.reason) from None
    return dict(value)


def check_description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise InvalidField("description", f"longer than {MAX_DESCRIPTION_CHARS} characters")
    return value


def check_rate_limit(value: float | None) -> float | None:
    """Requests per second, greater than zero, or null for no limit."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise InvalidField("rate_limit", "expected a number of requests per second above 0")
    return float(value)
