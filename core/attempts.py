"""What the deliverer writes after an attempt: the attempt record, a retry, a dead letter.

Pure: `plan_attempt` turns one observed HTTP attempt and the decision `core.outcome.decide`
took into the records to produce; `plan_unsendable` covers commands that are not sent at
all. The shell produces the records and only then finishes the command's offset.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias, assert_never

from core.ids import DELIVERY_NAMESPACE
from core.outcome import (
    Classification,
    Decision,
    Delivered,
    DisableSubscription,
    Fail,
    Gone,
    MarkDelivered,
    Retry,
    ScheduleRetry,
)
from core.outcome import DeadLetter as GiveUp
from core.records import AttemptOutcome, DeadLetter, DeliveryAttempt, DeliveryCommand, utc_ms

RESPONSE_BODY_CAP_BYTES: Final = 64 * 1024
"""Response bodies are read up to this many bytes, then the connection drops."""
EXCERPT_CHARS: Final = 1024
"""Characters of the response body kept in the attempt record."""

Unsendable: TypeAlias = Literal["deleted", "paused", "disabled"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the command was read from (for dead letters)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Observed:
    """One HTTP attempt as the shell saw it: when, how long, and what came back."""

    at: datetime
    duration_ms: int
    status_code: int | None
    response_body: bytes | None


@dataclass(frozen=True, slots=True)
class Plan:
    """Records to produce for one command; `retry` goes into the subscription's backlog,
    due at its `not_before`."""

    attempt: DeliveryAttempt | None
    retry: DeliveryCommand | None = None
    dead_letter: DeadLetter | None = None
    disable_reason: str | None = None


def excerpt(body: bytes | None) -> str | None:
    if not body:
        return None
    return body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def error_of(classification: Classification) -> str | None:
    match classification:
        case Delivered():
            return None
        case Gone():
            return "HTTP 410 Gone"
        case Retry(reason=reason) | Fail(reason=reason):
            return reason
        case _:
            assert_never(classification)


def _attempt(
    command: DeliveryCommand,
    *,
    number: int,
    observed: Observed,
    error: str | None,
    outcome: AttemptOutcome,
    next_attempt_at: datetime | None,
) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=command.delivery_id,
        event_id=command.event_id,
        event_type=command.event_type,
        subscription_id=command.subscription_id,
        tenant=command.tenant,
        attempt=number,
        at=utc_ms(observed.at),
        status_code=observed.status_code,
        duration_ms=observed.duration_ms,
        error=error,
        response_excerpt=excerpt(observed.response_body),
        outcome=outcome,
        next_attempt_at=None if next_attempt_at is None else utc_ms(next_attempt_at),
        trace=command.trace,
        tracestate=command.tracestate,
    )


def dead_letter_id(delivery_id: str, attempt: int) -> str:
    """Stable per (delivery, attempt), so a re-run after a crash writes the same letter id."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"dead-letter:{delivery_id}:{attempt}"))


def _dead_letter(
    command: DeliveryCommand, *, reason: str, error: str, at: datetime, source: Source
) -> DeadLetter:
    return DeadLetter(
        id=dead_letter_id(command.delivery_id, command.attempt),
        reason=reason,
        at=utc_ms(at),
        subscription_id=command.subscription_id,
        command=command,
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
        raw_value=None,
        error=error,
    )


def plan_attempt(
    command: DeliveryCommand,
    observed: Observed,
    classification: Classification,
    decision: Decision,
    *,
    now: datetime,
    source: Source,
) -> Plan:
    """The records after attempt number `command.attempt + 1` ended as `classification`."""
    number = command.attempt + 1
    error = error_of(classification)
    match decision:
        case MarkDelivered():
            return Plan(
                _attempt(
                    command,
                    number=number,
                    observed=observed,
                    error=None,
                    outcome="delivered",
                    next_attempt_at=None,
                )
            )
        case ScheduleRetry(delay_s=delay_s):
            due = utc_ms(now + timedelta(seconds=delay_s))
            record = _attempt(
                command,
                number=number,
                observed=observed,
                error=error,
                outcome="retrying",
                next_attempt_at=due,
            )
            retry = dataclasses.replace(command, attempt=number, last_error=error, not_before=due)
            return Plan(record, retry)
        case GiveUp(reason=reason):
            record = _attempt(
                command,
                number=number,
                observed=observed,
                error=error,
                outcome="dead",
                next_attempt_at=None,
            )
            tried = dataclasses.replace(command, attempt=number, last_error=error)
            letter = _dead_letter(tried, reason="exhausted", error=reason, at=now, source=source)
            return Plan(record, dead_letter=letter)
        case DisableSubscription(reason=reason):
            # 410 drops the delivery for good (outcome "failed"); recover can re-send it
            record = _attempt(
                command,
                number=number,
                observed=observed,
                error=error,
                outcome="failed",
                next_attempt_at=None,
            )
            return Plan(record, disable_reason=reason)
        case _:
            assert_never(decision)


def plan_unsendable(
    command: DeliveryCommand, why: Unsendable, *, now: datetime, source: Source
) -> Plan:
    """A command whose subscription is deleted, paused or disabled: no HTTP request.

    Deleted and disabled drop it (outcome "failed"); paused dead-letters it (outcome
    "dead") so `recover` can send it once the subscription is resumed. Both are
    recoverable in the history; neither consumes a retry.
    """
    error = f"subscription {why}"
    observed = Observed(at=now, duration_ms=0, status_code=None, response_body=None)
    number = command.attempt + 1
    match why:
        case "deleted" | "disabled":
            return Plan(
                _attempt(
                    command,
                    number=number,
                    observed=observed,
                    error=error,
                    outcome="failed",
                    next_attempt_at=None,
                )
            )
        case "paused":
            record = _attempt(
                command,
                number=number,
                observed=observed,
                error=error,
                outcome="dead",
                next_attempt_at=None,
            )
            tried = dataclasses.replace(command, last_error=error)
            letter = _dead_letter(tried, reason=error, error=error, at=now, source=source)
            return Plan(record, dead_letter=letter)
        case _:
            assert_never(why)


def is_due(command: DeliveryCommand, now: datetime) -> bool:
    return command.not_before is None or command.not_before <= now
