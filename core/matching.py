"""Which subscriptions an event goes to: tenant, type pattern, filter and status.

Pattern rules: an exact type name, `noun.*` (every `noun.<verb>`), or `*`. A filter
(`core.filters`) is compiled once when its subscription is read, so routing calls it and
never parses. Only `active` subscriptions receive events.
`SubscriptionIndex` answers the same question as `matches` over many subscriptions without
scanning them all; `route` is the one-shot form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from core.records import DomainEvent, Subscription

WILDCARD: Final = "*"
NOUN_WILDCARD_SUFFIX: Final = ".*"
PLATFORM_PREFIX: Final = "webhook."
"""The event types the platform itself sends (`webhook.ping`); tenants do not publish them."""


def is_platform_type(event_type: str) -> bool:
    """True for an event type reserved for the platform (`webhook.*`)."""
    return event_type.startswith(PLATFORM_PREFIX)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` matches every type, `noun.*` every `noun.<verb>`, anything else only itself."""
    if pattern == WILDCARD:
        return True
    if pattern.endswith(NOUN_WILDCARD_SUFFIX):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches(subscription: Subscription, event: DomainEvent) -> bool:
    """True when `event` is to be delivered to `subscription`."""
    return (
        subscription.status == "active"
        and subscription.tenant == event.tenant
        and any(pattern_matches(p, event.type) for p in subscription.event_types)
        and subscription.filter.matches(event)
    )


@dataclass(slots=True)
class _TenantIndex:
    exact: dict[str, list[Subscription]] = field(default_factory=dict)
    prefix: dict[str, list[Subscription]] = field(default_factory=dict)  # "task." for task.*
    everything: list[Subscription] = field(default_factory=list)


def _dot_prefixes(event_type: str) -> list[str]:
    """Every prefix of `event_type` ending at a dot: what a `<prefix>*` pattern can match."""
    return [event_type[: i + 1] for i, char in enumerate(event_type) if char == "."]


class SubscriptionIndex:
    """Active subscriptions by tenant and pattern, built once per table version.

    `route(event)` returns exactly the subscriptions `matches` accepts, each once, ordered by
    id, touching only the candidates for the event's tenant, type and noun.
    """

    __slots__ = ("_tenants", "size")

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self._tenants: dict[str, _TenantIndex] = {}
        self.size = 0
        for sub in subscriptions:
            if sub.status != "active":
                continue
            self.size += 1
            tenant = self._tenants.setdefault(sub.tenant, _TenantIndex())
            for pattern in dict.fromkeys(sub.event_types):  # once per distinct pattern
                if pattern == WILDCARD:
                    tenant.everything.append(sub)
                elif pattern.endswith(NOUN_WILDCARD_SUFFIX):
                    tenant.prefix.setdefault(pattern[:-1], []).append(sub)
                else:
                    tenant.exact.setdefault(pattern, []).append(sub)

    def route(self, event: DomainEvent) -> list[Subscription]:
        tenant = self._tenants.get(event.tenant)
        if tenant is None:
            return []
        candidates: dict[str, Subscription] = {}
        groups: list[Sequence[Subscription]] = [tenant.exact.get(event.type, ()), tenant.everything]
        if tenant.prefix:
            groups.extend(tenant.prefix.get(p, ()) for p in _dot_prefixes(event.type))
        for group in groups:
            for sub in group:
                candidates.setdefault(sub.id, sub)
        return [
            candidates[sub_id]
            for sub_id in sorted(candidates)
            if candidates[sub_id].filter.matches(event)
        ]


def route(subscriptions: Iterable[Subscription], event: DomainEvent) -> list[Subscription]:
    """The subscriptions `event` goes to, each once, ordered by id."""
    return SubscriptionIndex(subscriptions).route(event)
