"""The API's shell over `core.quotas`: each tenant's publish bucket in this process, and the
subscription quotas checked against the API's subscriptions table before a write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from api.model.errors import QuotaExceeded, RateLimited
from core.quotas import (
    Admitted,
    Bucket,
    PublishRate,
    SubscriptionQuotas,
    check_headers,
    check_write,
    is_full,
    take,
)
from core.records import Subscription
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_table import SubscriptionTable

MAX_BUCKETS: Final = 10_000
"""Buckets kept before refilled ones are forgotten: the admin token may name any tenant, so
the map must not grow with every name it ever published under."""


def publish_rate(settings: Settings) -> PublishRate:
    return PublishRate(per_s=settings.publish_rate_per_s, burst=settings.publish_burst)


def subscription_quotas(settings: Settings) -> SubscriptionQuotas:
    return SubscriptionQuotas(
        per_tenant=settings.max_subscriptions_per_tenant,
        per_url=settings.max_subscriptions_per_url,
        headers=settings.max_custom_headers,
        header_bytes=settings.max_custom_header_bytes,
    )


class PublishLimiter:
    """Token buckets by tenant, in this process only: N API processes admit N times the rate
    (docs/operations.md says so); a shared count would put a store on every publish."""

    def __init__(self, rate: PublishRate, *, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}

    def admit(self, tenant: str) -> None:
        """Take one event from the tenant's bucket; RateLimited (429) when it is empty."""
        now_s = self._clock()
        verdict = take(self._rate, self._buckets.get(tenant), now_s)
        self._buckets[tenant] = verdict.bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._forget_full(now_s)
        if not isinstance(verdict, Admitted):
            raise RateLimited(verdict.breach, verdict.retry_after_s)

    def _forget_full(self, now_s: float) -> None:
        full = [t for t, b in self._buckets.items() if is_full(self._rate, b, now_s)]
        for tenant in full:
            del self._buckets[tenant]

    def __len__(self) -> int:
        return len(self._buckets)


def ensure_within_quotas(
    settings: Settings,
    table: SubscriptionTable,
    candidate: Subscription,
    *,
    previous: Subscription | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """QuotaExceeded (409) when writing `candidate` takes its tenant past a quota, counted on
    the API's subscriptions table (which every API process follows); `headers` are the clear
    custom headers the request writes (None: it keeps the subscription's)."""
    quotas = subscription_quotas(settings)
    breach = None if headers is None else check_headers(quotas, headers)
    if breach is None:
        breach = check_write(quotas, table.snapshot().values(), candidate, previous=previous)
    if breach is not None:
        raise QuotaExceeded(breach)
