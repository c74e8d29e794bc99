"""Per-tenant quotas: may this subscription be written, may this tenant publish now?

Pure: the shell passes the subscriptions it knows (the API's compacted table), the quotas
from settings and the time; a refusal is a `QuotaBreach` naming the quota, its limit and
where the tenant stands, which the API answers as a problem document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from core.addresses import normalise_host
from core.records import Subscription

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionQuotas:
    """What one tenant may hold: every service keeps a copy of every subscription in memory,
    and each subscription matching an event is one request to its URL."""

    per_tenant: int
    per_url: int
    headers: int
    header_bytes: int


@dataclass(frozen=True, slots=True)
class QuotaBreach:
    """A refused write or publish: `quota` names the limit, `limit` is its value, `current`
    where the tenant (or the request) stands (None for the publish rate: a token bucket
    knows no count), `detail` says it in a sentence."""

    quota: str
    limit: float
    current: float | None
    detail: str


def target_key(url: str) -> str:
    """The URL as its target: scheme, host (as the HTTP client sends to it), port (the
    scheme's default made explicit), path and query; the fragment is never sent."""
    parts = urlsplit(url)
    host = normalise_host(parts.hostname or "")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{host}:{port}{parts.path or '/'}{query}"


def header_bytes(headers: Mapping[str, str]) -> int:
    """Bytes of the custom headers as sent: UTF-8 names and values."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in headers.items())


def check_headers(quotas: SubscriptionQuotas, headers: Mapping[str, str]) -> QuotaBreach | None:
    """At most `quotas.headers` custom headers of at most `quotas.header_bytes` together."""
    if len(headers) > quotas.headers:
        return QuotaBreach(
            "headers",
            quotas.headers,
            len(headers),
            f"a subscription may have at most {quotas.headers} custom headers;"
            f" this one asks for {len(headers)}",
        )
    size = header_bytes(headers)
    if size > quotas.header_bytes:
        return QuotaBreach(
            "header_bytes",
            quotas.header_bytes,
            size,
            f"a subscription's custom headers may total at most {quotas.header_bytes} bytes;"
            f" these total {size}",
        )
    return None


def check_write(
    quotas: SubscriptionQuotas,
    existing: Iterable[Subscription],
    candidate: Subscription,
    *,
    previous: Subscription | None = None,
) -> QuotaBreach | None:
    """Whether `candidate` (a new subscription, or `previous` updated) fits its tenant's counts
    beside the `existing` subscriptions (every tenant's; `previous` among them or not). Its
    headers are judged by `check_headers` on their clear values, before they are sealed.

    An update is refused only for what it changes: a URL it keeps never turns a write into a
    refusal after an operator lowered a quota.
    """
    target = target_key(candidate.url)
    new_target = previous is None or target_key(previous.url) != target
    if previous is not None and not new_target:
        return None
    owned = [s for s in existing if s.tenant == candidate.tenant and s.id != candidate.id]
    if previous is None and len(owned) >= quotas.per_tenant:
        return QuotaBreach(
            "subscriptions_per_tenant",
            quotas.per_tenant,
            len(owned),
            f"tenant {candidate.tenant!r} has {len(owned)} subscriptions,"
            f" the most it may have ({quotas.per_tenant})",
        )
    same_target = sum(1 for s in owned if target_key(s.url) == target)
    if same_target >= quotas.per_url:
        return QuotaBreach(
            "subscriptions_per_url",
            quotas.per_url,
            same_target,
            f"tenant {candidate.tenant!r} has {same_target} subscriptions to this URL,"
            f" the most it may have ({quotas.per_url})",
        )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishRate:
    """Events a tenant may publish: `per_s` on average, up to `burst` at once."""

    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """A tenant's token bucket: `tokens` left at monotonic time `at_s`."""

    tokens: float
    at_s: float


@dataclass(frozen=True, slots=True)
class Admitted:
    """The event may be published; `bucket` is the tenant's bucket after taking one token."""

    bucket: Bucket


@dataclass(frozen=True, slots=True)
class Throttled:
    """Not now: a token is back after `retry_after_s` (whole seconds, as `Retry-After`)."""

    bucket: Bucket
    retry_after_s: int
    breach: QuotaBreach


def take(rate: PublishRate, bucket: Bucket | None, now_s: float) -> Admitted | Throttled:
    """Take one token from the tenant's bucket (a full one when it has none yet)."""
    if bucket is None:
        tokens = float(rate.burst)
    else:
        elapsed_s = max(0.0, now_s - bucket.at_s)
        tokens = min(float(rate.burst), bucket.tokens + elapsed_s * rate.per_s)
    if tokens >= 1.0:
        return Admitted(Bucket(tokens - 1.0, now_s))
    refilled = Bucket(tokens, now_s)
    # Rounded up, and at least 1 s: a client honouring Retry-After is admitted.
    wait_s = max(1, math.ceil((1.0 - tokens) / rate.per_s))
    breach = QuotaBreach(
        "publish_rate",
        rate.per_s,
        None,
        f"the tenant may publish {rate.per_s:g} events/s with bursts of {rate.burst};"
        f" retry after {wait_s} s",
    )
    return Throttled(refilled, wait_s, breach)


def is_full(rate: PublishRate, bucket: Bucket, now_s: float) -> bool:
    """A bucket refilled to its burst is the same as none: the shell may forget it."""
    return bucket.tokens + max(0.0, now_s - bucket.at_s) * rate.per_s >= rate.burst
