"""The status of a delivery in the history, merged from records that may arrive in any order.

Commands, attempts and dead letters reach the projector on three topics, so their order is
not guaranteed. Each record proposes a status at a time; the history keeps the proposal with
the greatest `StatusKey`: `delivered` wins over everything (a success is final), otherwise
the latest proposal wins, and at equal times the further status. Taking a maximum makes the
merge idempotent and independent of arrival order, so a rebuild gives the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, NamedTuple, assert_never

from core.records import AttemptOutcome

DeliveryStatus = Literal["pending", "retrying", "failed", "dead", "delivered"]

STATUSES: Final[tuple[DeliveryStatus, ...]] = ("pending", "retrying", "failed", "dead", "delivered")
RECOVERABLE: Final[tuple[DeliveryStatus, ...]] = ("failed", "dead")
_RANK: Final[dict[DeliveryStatus, int]] = {status: n for n, status in enumerate(STATUSES)}


class StatusKey(NamedTuple):
    """Orders status proposals: (final success, time, rank of the status)."""

    terminal: bool
    at: datetime
    rank: int


def status_key(status: DeliveryStatus, at: datetime) -> StatusKey:
    return StatusKey(status == "delivered", at, _RANK[status])


def status_of_outcome(outcome: AttemptOutcome) -> DeliveryStatus:
    """The history status an attempt's outcome proposes.

    `failed` (dropped for good: subscription deleted or disabled, 410) stays its own status,
    apart from `dead` (retries exhausted, dead-lettered); recover re-sends both.
    """
    match outcome:
        case "delivered":
            return "delivered"
        case "retrying":
            return "retrying"
        case "dead":
            return "dead"
        case "failed":
            return "failed"
        case _:
            assert_never(outcome)


def merge(
    current: tuple[DeliveryStatus, datetime], proposed: tuple[DeliveryStatus, datetime]
) -> tuple[DeliveryStatus, datetime]:
    """The status kept when `proposed` meets `current` (the rule the SQL upsert applies)."""
    if status_key(*proposed) > status_key(*current):
        return proposed
    return current
