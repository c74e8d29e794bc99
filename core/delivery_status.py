"""The status of a delivery in the history, merged from records that may arrive in any order.

Commands, attempts and dead letters reach the projector on three topics, so their order is
not guaranteed. Each record proposes a status at a time; the history keeps the proposal with
the greatest `StatusKey`: `delivered` wins over everything (a success is final), otherwise
the latest proposal wins, and at equal times the further status. Taking a maximum makes the
merge idempotent and independent of arrival order, so a rebuild gives the same rows. The
values that follow the status (next attempt, last error) are the winner's, and at an equal
key the greatest of each, so ties do not depend on arrival order either.

Production applies this rule in SQL (the projector's upsert); `merge` and `fold` here are its
specification, which `tests/integration/api/test_delivery_status_sql.py` folds over the same
records the upsert is driven with.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import reduce
from typing import Final, Literal, NamedTuple, TypeVar, assert_never

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


class Proposal(NamedTuple):
    """What one record says of its delivery: a status at a time, and the values that follow
    the status into the row."""

    status: DeliveryStatus
    at: datetime
    next_attempt_at: datetime | None
    last_error: str | None


_T = TypeVar("_T", datetime, str)


def _greatest(a: _T | None, b: _T | None) -> _T | None:
    """SQL's GREATEST: nulls ignored; text by code point (the SQL says COLLATE "C")."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def settle(current: Proposal, proposed: Proposal) -> Proposal:
    """`merge`, with the values that follow the status: the winner's, and at an equal key
    (an attempt and its dead letter stamped the same millisecond) the greatest of each,
    so the row never depends on which of the two arrived first."""
    status, at = merge((current.status, current.at), (proposed.status, proposed.at))
    if status_key(status, at) != status_key(proposed.status, proposed.at):
        return current
    if status_key(status, at) != status_key(current.status, current.at):
        return proposed
    return Proposal(
        status,
        at,
        _greatest(current.next_attempt_at, proposed.next_attempt_at),
        _greatest(current.last_error, proposed.last_error),
    )


def fold(proposals: Iterable[Proposal]) -> Proposal:
    """A delivery's row from all its records' proposals, in any order, with repeats: the
    specification the projector's upsert (`api/projector/projection.py`) is tested against."""
    return reduce(settle, proposals)
