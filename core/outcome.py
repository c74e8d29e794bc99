"""Classify one HTTP delivery attempt and decide what happens next.

The deliverer reports what happened as an ``AttemptOutcome``; ``classify`` and ``decide`` say
whether it was delivered, is retried (and when), dead-lettered or disables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias, assert_never

from core.retry import RetrySchedule, retry_after_s

# The longest Retry-After honoured: the schedule's longest step.
DEFAULT_RETRY_AFTER_MAX_S: Final = 36000.0

TransportErrorKind: TypeAlias = Literal[
    "connect",  # TCP connect failed or was reset before a response
    "dns",  # the name did not resolve
    "tls",  # handshake or certificate failure
    "timeout",  # the whole-attempt deadline passed
    "protocol",  # the response was malformed or the connection closed mid-response
    "refused_target",  # the SSRF policy refused the target's address
    "redirect",  # a redirect the client was told not to follow surfaced as an error
]


# --- what happened ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """The endpoint answered with a final status (redirects are not followed)."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class TransportError:
    """No HTTP status was obtained (a value describing the failure, not an exception)."""

    kind: TransportErrorKind
    message: str


AttemptOutcome: TypeAlias = Response | TransportError


# --- what it means ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """A 2xx answer: the webhook is delivered."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure; ``retry_after_s`` is the endpoint's requested minimum wait."""

    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """A failure the endpoint is unlikely to fix by itself; it still follows the schedule."""

    reason: str


@dataclass(frozen=True, slots=True)
class Gone:
    """410 Gone: the endpoint asks to stop; the subscription is disabled."""


Classification: TypeAlias = Delivered | Retry | Fail | Gone


# --- what to do ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkDelivered:
    """Record the delivery as done."""


@dataclass(frozen=True, slots=True)
class ScheduleRetry:
    """Try the command again, due ``delay_s`` seconds from now (a timer in the backlog)."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Retries are exhausted; move the command to the dead-letter topic."""

    reason: str


@dataclass(frozen=True, slots=True)
class DisableSubscription:
    """Disable the subscription (and dead-letter this command)."""

    reason: str


Decision: TypeAlias = MarkDelivered | ScheduleRetry | DeadLetter | DisableSubscription

_RETRIED_KINDS: Final[frozenset[TransportErrorKind]] = frozenset(
    {"connect", "dns", "tls", "timeout", "protocol"}
)
_QUICK_RETRY_KINDS: Final[frozenset[TransportErrorKind]] = frozenset({"connect", "dns"})


def classify(
    outcome: AttemptOutcome,
    *,
    now: datetime,
    retry_after_max_s: float = DEFAULT_RETRY_AFTER_MAX_S,
) -> Classification:
    """Map an attempt outcome to its meaning; Retry-After is read for 429 and 503 only."""
    match outcome:
        case Response(status=status, retry_after=header):
            return _classify_status(status, header, now=now, retry_after_max_s=retry_after_max_s)
        case TransportError(kind=kind, message=message):
            reason = f"{kind} error: {message}"
            if kind in _RETRIED_KINDS:
                return Retry(reason)
            return Fail(reason)
        case _:
            assert_never(outcome)


def _classify_status(
    status: int, header: str | None, *, now: datetime, retry_after_max_s: float
) -> Classification:
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return Delivered()
    if status == 410:
        return Gone()
    if status in (429, 503):
        return Retry(reason, retry_after_s(header, now=now, max_s=retry_after_max_s))
    if status == 408 or 500 <= status < 600:
        return Retry(reason)
    if 300 <= status < 400:
        return Fail(f"{reason}: redirects are not followed")
    return Fail(reason)


def is_quick_retryable(error: TransportError) -> bool:
    """Whether a short in-process retry (tenacity) may help: connection and DNS errors only."""
    return error.kind in _QUICK_RETRY_KINDS


def decide(
    outcome: Classification, *, attempt: int, schedule: RetrySchedule, rand: float
) -> Decision:
    """What to do after attempt number ``attempt`` (1-based) ended with ``outcome``.

    A Retry-After longer than the scheduled (jittered) delay replaces it.
    """
    match outcome:
        case Delivered():
            return MarkDelivered()
        case Gone():
            return DisableSubscription("the endpoint answered 410 Gone")
        case Retry(reason=reason, retry_after_s=requested_s):
            return _schedule(reason, requested_s, attempt=attempt, schedule=schedule, rand=rand)
        case Fail(reason=reason):
            return _schedule(reason, None, attempt=attempt, schedule=schedule, rand=rand)
        case _:
            assert_never(outcome)


def _schedule(
    reason: str,
    requested_s: float | None,
    *,
    attempt: int,
    schedule: RetrySchedule,
    rand: float,
) -> Decision:
    delay_s = schedule.next_delay_s(attempt, rand)
    if delay_s is None:
        return DeadLetter(f"gave up after {attempt} attempts; last: {reason}")
    if requested_s is not None and requested_s > delay_s:
        delay_s = requested_s
    return ScheduleRetry(delay_s=delay_s)
