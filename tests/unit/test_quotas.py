"""Unit tests of the per-tenant quotas in core.quotas: hostile tenants at their limits."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from core.quotas import (
    Admitted,
    Bucket,
    PublishRate,
    SubscriptionQuotas,
    Throttled,
    check_headers,
    check_write,
    is_full,
    take,
    target_key,
)
from core.records import Subscription
from tests.factories import subscription

QUOTAS = SubscriptionQuotas(per_tenant=3, per_url=2, headers=2, header_bytes=20)


def sub(tenant: str, url: str = "https://example.com/h") -> Subscription:
    return subscription(str(uuid.uuid4()), "task.created", tenant=tenant, url=url)


def test_a_tenant_at_its_quota_is_refused_while_another_still_creates() -> None:
    hostile = [sub("hostile", f"https://example.com/{n}") for n in range(3)]
    breach = check_write(QUOTAS, hostile, sub("hostile", "https://example.com/new"))
    assert breach is not None
    assert (breach.quota, breach.limit, breach.current) == ("subscriptions_per_tenant", 3, 3)
    assert "'hostile'" in breach.detail
    assert check_write(QUOTAS, hostile, sub("quiet", "https://example.com/new")) is None


def test_the_same_url_in_any_spelling_counts_against_one_target() -> None:
    existing = [sub("t", "https://Example.COM/h"), sub("t", "https://example.com:443/h#x")]
    breach = check_write(QUOTAS, existing, sub("t", "https://example.com/h"))
    assert breach is not None
    assert (breach.quota, breach.limit, breach.current) == ("subscriptions_per_url", 2, 2)
    assert check_write(QUOTAS, existing, sub("t", "https://example.com/other")) is None
    assert check_write(QUOTAS, existing, sub("t", "http://example.com/h")) is None
    assert check_write(QUOTAS, existing, sub("u", "https://example.com/h")) is None


def test_target_key_reads_the_host_as_the_http_client_does() -> None:
    fullwidth = "https://\uff25\uff38AMPLE.com/h"
    assert target_key(fullwidth) == target_key("https://example.com:443/h")
    assert target_key("https://example.com/h?a=1") != target_key("https://example.com/h")


def test_an_update_is_refused_only_for_what_it_changes() -> None:
    full = [sub("t", f"https://example.com/{n}") for n in range(3)]
    previous = full[0]
    keeps = dataclasses.replace(previous, description="new", version=2)
    assert check_write(QUOTAS, full, keeps, previous=previous) is None
    moved = dataclasses.replace(previous, url="https://example.com/1", version=2)
    assert check_write(QUOTAS, [*full, sub("t", "https://example.com/1")], moved, previous=previous)


@pytest.mark.parametrize(
    ("headers", "quota", "current"),
    [
        ({"a": "1", "b": "2", "c": "3"}, "headers", 3),
        ({"x-long": "v" * 15}, "header_bytes", 21),
        ({"x": "\u00e9" * 10}, "header_bytes", 21),  # bytes, not characters
    ],
)
def test_header_quotas(headers: dict[str, str], quota: str, current: int) -> None:
    breach = check_headers(QUOTAS, headers)
    assert breach is not None
    assert (breach.quota, breach.current) == (quota, current)
    assert check_headers(QUOTAS, {"x-a": "1", "x-b": "2"}) is None


RATE = PublishRate(per_s=2.0, burst=3)


def test_a_burst_is_admitted_then_throttled_with_a_retry_after_a_client_can_honour() -> None:
    bucket: Bucket | None = None
    for _ in range(3):
        verdict = take(RATE, bucket, now_s=100.0)
        assert isinstance(verdict, Admitted)
        bucket = verdict.bucket
    refused = take(RATE, bucket, now_s=100.0)
    assert isinstance(refused, Throttled)
    assert refused.retry_after_s == 1
    assert refused.breach.quota == "publish_rate"
    assert refused.breach.limit == 2.0
    honoured = take(RATE, refused.bucket, now_s=100.0 + refused.retry_after_s)
    assert isinstance(honoured, Admitted)


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    slow = PublishRate(per_s=0.25, burst=1)
    first = take(slow, None, now_s=0.0)
    assert isinstance(first, Admitted)
    refused = take(slow, first.bucket, now_s=1.0)
    assert isinstance(refused, Throttled)
    assert refused.retry_after_s == 3  # 0.25 token back after 1 s; 0.75 more needs 3 s
    assert isinstance(take(slow, refused.bucket, now_s=1.0 + 3), Admitted)


def test_a_refilled_bucket_may_be_forgotten() -> None:
    verdict = take(RATE, None, now_s=0.0)
    assert isinstance(verdict, Admitted)
    assert not is_full(RATE, verdict.bucket, now_s=0.1)
    assert is_full(RATE, verdict.bucket, now_s=0.5)
