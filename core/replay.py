"""Which past events a replay job delivers to its subscription, and which failed deliveries
a recover job sends again: pure selection rules."""

from __future__ import annotations

from collections.abc import Sequence

from core.matching import pattern_matches
from core.records import DomainEvent, Subscription


def selects(event: DomainEvent, subscription: Subscription, event_types: Sequence[str]) -> bool:
    """True when a replay to `subscription` limited to `event_types` (empty = all) sends `event`.

    The routing rules (same tenant, a type the subscription takes, its filter) plus
    the job's own type limit; the subscription's status is the deliverer's to judge, so a
    replay asked for while it is paused is still recorded.
    """
    return (
        event.tenant == subscription.tenant
        and any(pattern_matches(p, event.type) for p in subscription.event_types)
        and of_types(event.type, event_types)
        and subscription.filter.matches(event)
    )


def of_types(event_type: str, event_types: Sequence[str]) -> bool:
    """True when a job limited to `event_types` (exact names, `noun.*`, `*`; empty = all)
    takes an event or delivery of `event_type`."""
    return not event_types or any(pattern_matches(p, event_type) for p in event_types)
