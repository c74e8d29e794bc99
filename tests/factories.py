"""Record factories shared by the tests: one way to build a plain Subscription."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from core.records import FilterValue, Subscription, SubscriptionStatus

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def subscription(
    sub_id: str,
    *types: str,
    tenant: str = "acme",
    status: SubscriptionStatus = "active",
    filter: Mapping[str, FilterValue] | None = None,
) -> Subscription:
    """An unsigned subscription (no secrets) to `types`, created and updated at NOW."""
    return Subscription(
        id=sub_id,
        tenant=tenant,
        url=f"https://example.com/hooks/{sub_id}",
        event_types=types,
        filter=filter or {},
        description="",
        headers={},
        rate_limit=None,
        ordered=False,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        version=1,
        secrets=(),
    )
