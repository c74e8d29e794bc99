"""What the deliverer writes after an attempt: the attempt record, a retry, a dead letter.

Pure: `plan_attempt` turns one observed HTTP attempt and the decision `core.outcome.decide`
took into the records to produce; `plan_unsendable` covers commands that are not sent at
all. The shell produces the records and only then finishes the command's offset.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
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
from core.records import (
    AttemptOrigin,
    AttemptOutcome,
    DeadLetter,
    DeliveryAttempt,
    DeliveryCommand,
    Timings,
    utc_ms,
)
from core.webhook import logged_headers

RESPONSE_BODY_CAP_BYTES: Final = 64 * 1024
"""Response bodies are read up to this many bytes, then the connection drops."""
EXCERPT_CHARS: Final = 1024
"""Characters of the response body kept in the attempt record."""
REQUEST_BODY_KEPT_BYTES: Final = 64 * 1024
"""Bytes of the request body kept in the attempt record: whole for any usual event, while
a retried megabyte body does not put a megabyte on the attempts topic per attempt."""
RESPONSE_HEADERS_KEPT: Final = 50
"""Response headers kept in the attempt record (distinct names, first come); with the
bounds below an attempt's response headers stay under ~64 KiB, whatever an endpoint sends."""
HEADER_NAME_KEPT_CHARS: Final = 256
HEADER_VALUE_KEPT_CHARS: Final = 1024

Unsendable: TypeAlias = Literal["deleted", "paused", "disabled"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the command was read from (for dead letters)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Observed:
    """One HTTP attempt as the shell saw it: when, how long, what was sent and what came
    back. `request_headers` hold the signatures in clear; only `logged_headers` of them
    are ever recorded."""

    at: datetime
    duration_ms: int
    status_code: int | None
    response_body: bytes | None
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    timings: Timings = field(default_factory=Timings)


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


def kept_request_body(body: bytes | None) -> str | None:
    """The request body as recorded: its first `REQUEST_BODY_KEPT_BYTES` as text (JSON and
    form bodies are UTF-8)."""
    if body is None:
        return None
    return body[:REQUEST_BODY_KEPT_BYTES].decode("utf-8", errors="replace")


def kept_response_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The response's headers as recorded: names in lower case, a repeated name's values
    joined with `, `, each bounded, at most `RESPONSE_HEADERS_KEPT` names."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()[:HEADER_NAME_KEPT_CHARS]
        if lowered in kept:
            kept[lowered] = f"{kept[lowered]}, {value}"[:HEADER_VALUE_KEPT_CHARS]
        elif len(kept) < RESPONSE_HEADERS_KEPT:
            kept[lowered] = value[:HEADER_VALUE_KEPT_CHARS]
    return kept


def attempt_number(command: DeliveryCommand) -> int:
    """The number the next attempt of `command` gets in its delivery's history: it goes on
    from the attempts made before the delivery was sent again."""
    return command.prior_attempts + command.attempt + 1


def attempt_origin(command: DeliveryCommand) -> AttemptOrigin:
    """Why the next attempt of `command` is made: its origin, or `retry` after the first."""
    return "retry" if command.attempt > 0 else command.origin


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
        attempt=attempt_number(command),
        at=utc_ms(observed.at),
        status_code=observed.status_code,
        duration_ms=observed.duration_ms,
        error=error,
        response_excerpt=excerpt(observed.response_body),
        outcome=outcome,
        next_attempt_at=None if next_attempt_at is None else utc_ms(next_attempt_at),
        trace=command.trace,
        tracestate=command.tracestate,
        origin=attempt_origin(command),
        request_headers=logged_headers(observed.request_headers),
        request_body=kept_request_body(observed.request_body),
        response_headers=kept_response_headers(observed.response_headers),
        timings=observed.timings,
    )


def dead_letter_id(delivery_id: str, attempt: int) -> str:
    """Stable per (delivery, attempt number in its history), so a re-run after a crash
    writes the same letter id and a delivery dead-lettered again after a recover a new one."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"dead-letter:{delivery_id}:{attempt}"))


def _dead_letter(
    command: DeliveryCommand, *, reason: str, error: str, at: datetime, source: Source
) -> DeadLetter:
    return DeadLetter(
        id=dead_letter_id(command.delivery_id, command.prior_attempts + command.attempt),
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
    """The records after the command's next attempt (`attempt_number`) ended as
    `classification`; a retry or a dead letter carries the command with that attempt made."""
    made = command.attempt + 1
    error = error_of(classification)
    match decision:
        case MarkDelivered():
            return Plan(
                _attempt(
                    command,
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
                observed=observed,
                error=error,
                outcome="retrying",
                next_attempt_at=due,
            )
            retry = dataclasses.replace(command, attempt=made, last_error=error, not_before=due)
            return Plan(record, retry)
        case GiveUp(reason=reason):
            record = _attempt(
                command,
                observed=observed,
                error=error,
                outcome="dead",
                next_attempt_at=None,
            )
            tried = dataclasses.replace(command, attempt=made, last_error=error)
            letter = _dead_letter(tried, reason="exhausted", error=reason, at=now, source=source)
            return Plan(record, dead_letter=letter)
        case DisableSubscription(reason=reason):
            # 410 drops the delivery for good (outcome "failed"); recover can re-send it
            record = _attempt(
                command,
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
    match why:
        case "deleted" | "disabled":
            return Plan(
                _attempt(
                    command,
                    observed=observed,
                    error=error,
                    outcome="failed",
                    next_attempt_at=None,
                )
            )
        case "paused":
            record = _attempt(
                command,
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
