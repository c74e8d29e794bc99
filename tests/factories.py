"""Record factories shared by the tests: one way to build a Subscription."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from core.filters import parse_filter
from core.records import Subscription

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def subscription(sub_id: str, *types: str, at: datetime = NOW, **changes: Any) -> Subscription:
    """An active, unsigned subscription of tenant acme to `types`, created and updated `at`;
    `changes` names any other field to set (`tenant=`, `secrets=`, `status=`...); a
    `filter=` given as a document is parsed as the API parses one."""
    if isinstance(changes.get("filter"), dict):
        changes["filter"] = parse_filter(changes["filter"])
    sub = Subscription(
        id=sub_id,
        tenant="acme",
        url=f"https://example.com/hooks/{sub_id}",
        event_types=types,
        created_at=at,
        updated_at=at,
    )
    return dataclasses.replace(sub, **changes)
