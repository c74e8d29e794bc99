"""A subscription's status changes: what each one records, and what a resume sends.

Disabled and paused are states a user must see the reason for and undo: a disabled
subscription keeps why and when (the deliverer's 410 or no-success window, or a user's own
PATCH); a paused one keeps when, so that resuming it can send what the pause held back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Final, assert_never

from core.records import Subscription, SubscriptionStatus

DISABLED_BY_REQUEST: Final = "disabled through the API"


def with_status(sub: Subscription, status: SubscriptionStatus, *, now: datetime) -> Subscription:
    """`sub` moved to `status` at `now`, with the state's reason and time set and the other
    states' cleared; the same status leaves them as they are."""
    if status == sub.status:
        return sub
    return dataclasses.replace(
        sub,
        status=status,
        disabled_reason=DISABLED_BY_REQUEST if status == "disabled" else None,
        disabled_at=now if status == "disabled" else None,
        paused_at=now if status == "paused" else None,
    )


@dataclass(frozen=True, slots=True)
class HeldWindow:
    """The events published while a subscription was paused: `[since, until)`."""

    since: datetime
    until: datetime


def held_by_pause(before: Subscription, after: Subscription) -> HeldWindow | None:
    """The window a resume re-sends: from the pause to the resume, when `before` was paused
    (since a known time) and `after` is active; None otherwise (a record written before
    pauses were timed has no window to send)."""
    if before.status != "paused" or after.status != "active" or before.paused_at is None:
        return None
    if after.updated_at <= before.paused_at:
        return None
    return HeldWindow(before.paused_at, after.updated_at)


def not_active_detail(sub: Subscription) -> str:
    """Why a request that sends to `sub` (test, replay, recover) is refused, and how to undo
    the state: one line of a 409 problem."""
    match sub.status:
        case "disabled":
            why = f" ({sub.disabled_reason})" if sub.disabled_reason else ""
            since = f" since {sub.disabled_at.isoformat()}" if sub.disabled_at else ""
            return (
                f"subscription {sub.id} is disabled{why}{since}: re-enable it with"
                f' PATCH /v1/subscriptions/{sub.id} {{"status": "active"}}'
            )
        case "paused":
            since = f" since {sub.paused_at.isoformat()}" if sub.paused_at else ""
            return (
                f"subscription {sub.id} is paused{since}: resume it with"
                f' PATCH /v1/subscriptions/{sub.id} {{"status": "active"}}; what the pause'
                " held back is sent then"
            )
        case "active":
            return f"subscription {sub.id} is active"
        case _:
            assert_never(sub.status)
