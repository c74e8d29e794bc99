"""Unit tests of attempt classification and the next-step decision in core.outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.outcome import (
    AttemptOutcome,
    Classification,
    DeadLetter,
    Decision,
    Delivered,
    DisableSubscription,
    Fail,
    Gone,
    MarkDelivered,
    Response,
    Retry,
    ScheduleRetry,
    TransportError,
    TransportErrorKind,
    classify,
    decide,
    is_quick_retryable,
)
from core.retry import RetrySchedule

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule()
MID = 0.5  # rand giving the nominal delay


def run(outcome: AttemptOutcome, *, attempt: int = 1) -> Decision:
    return decide(classify(outcome, now=NOW), attempt=attempt, schedule=SCHEDULE, rand=MID)


FIRST_RETRY = ScheduleRetry(delay_s=5.0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, MarkDelivered()),
        (201, MarkDelivered()),
        (202, MarkDelivered()),
        (204, MarkDelivered()),
        (299, MarkDelivered()),
        (301, FIRST_RETRY),
        (302, FIRST_RETRY),
        (307, FIRST_RETRY),
        (308, FIRST_RETRY),
        (400, FIRST_RETRY),
        (401, FIRST_RETRY),
        (403, FIRST_RETRY),
        (404, FIRST_RETRY),
        (408, FIRST_RETRY),
        (410, DisableSubscription("the endpoint answered 410 Gone")),
        (413, FIRST_RETRY),
        (422, FIRST_RETRY),
        (429, FIRST_RETRY),
        (500, FIRST_RETRY),
        (502, FIRST_RETRY),
        (503, FIRST_RETRY),
        (504, FIRST_RETRY),
    ],
)
def test_status_table_decisions(status: int, expected: Decision) -> None:
    assert run(Response(status)) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Delivered()),
        (204, Delivered()),
        (301, Fail("HTTP 301: redirects are not followed")),
        (400, Fail("HTTP 400")),
        (404, Fail("HTTP 404")),
        (408, Retry("HTTP 408")),
        (410, Gone()),
        (429, Retry("HTTP 429")),
        (500, Retry("HTTP 500")),
        (503, Retry("HTTP 503")),
        (599, Retry("HTTP 599")),
        (102, Fail("HTTP 102")),
        (600, Fail("HTTP 600")),
    ],
)
def test_status_table_classification(status: int, expected: Classification) -> None:
    assert classify(Response(status), now=NOW) == expected


@pytest.mark.parametrize(
    ("kind", "retried", "quick"),
    [
        ("connect", True, True),
        ("dns", True, True),
        ("tls", True, False),
        ("timeout", True, False),
        ("protocol", True, False),
        ("refused_target", False, False),
        ("redirect", False, False),
    ],
)
def test_transport_errors(kind: TransportErrorKind, retried: bool, quick: bool) -> None:
    error = TransportError(kind, "boom")
    classification = classify(error, now=NOW)
    assert isinstance(classification, Retry if retried else Fail)
    assert "boom" in classification.reason
    assert is_quick_retryable(error) is quick
    assert run(error) == FIRST_RETRY, "failures of every kind follow the schedule"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_for_429_and_503(status: int) -> None:
    outcome = Response(status, retry_after="120")
    assert classify(outcome, now=NOW) == Retry(f"HTTP {status}", 120.0)
    assert run(outcome) == ScheduleRetry(delay_s=120.0)


@pytest.mark.parametrize("status", [500, 408, 404])
def test_retry_after_is_ignored_for_other_statuses(status: int) -> None:
    assert run(Response(status, retry_after="3600")) == FIRST_RETRY


def test_retry_after_is_clamped() -> None:
    outcome = Response(429, retry_after="999999")
    assert classify(outcome, now=NOW) == Retry("HTTP 429", 36000.0)
    assert classify(outcome, now=NOW, retry_after_max_s=60.0) == Retry("HTTP 429", 60.0)
    assert run(outcome) == ScheduleRetry(delay_s=36000.0)


def test_retry_after_http_date() -> None:
    outcome = Response(503, retry_after="Tue, 04 Mar 2025 12:30:00 GMT")
    assert run(outcome) == ScheduleRetry(delay_s=1800.0)


def test_shorter_retry_after_does_not_shorten_the_schedule() -> None:
    assert run(Response(429, retry_after="1"), attempt=3) == ScheduleRetry(1800.0)


def test_unreadable_retry_after_falls_back_to_the_schedule() -> None:
    assert run(Response(503, retry_after="later please"), attempt=2) == ScheduleRetry(300.0)


def test_default_schedule_dead_letters_after_seven_retries() -> None:
    failure = classify(Response(500), now=NOW)
    decisions = [decide(failure, attempt=n, schedule=SCHEDULE, rand=MID) for n in range(1, 9)]
    assert decisions[:7] == [
        ScheduleRetry(5.0),
        ScheduleRetry(300.0),
        ScheduleRetry(1800.0),
        ScheduleRetry(7200.0),
        ScheduleRetry(18000.0),
        ScheduleRetry(36000.0),
        ScheduleRetry(36000.0),
    ]
    last = decisions[7]
    assert isinstance(last, DeadLetter)
    assert "8 attempts" in last.reason
    assert "HTTP 500" in last.reason


def test_exhausted_fail_dead_letters_even_with_retry_after() -> None:
    decision = decide(Retry("HTTP 429", 5.0), attempt=8, schedule=SCHEDULE, rand=MID)
    assert isinstance(decision, DeadLetter)


def test_jitter_moves_the_delay() -> None:
    low = decide(Fail("HTTP 404"), attempt=2, schedule=SCHEDULE, rand=0.0)
    high = decide(Fail("HTTP 404"), attempt=2, schedule=SCHEDULE, rand=0.99)
    assert isinstance(low, ScheduleRetry)
    assert low.delay_s == pytest.approx(240.0)
    assert isinstance(high, ScheduleRetry)
    assert high.delay_s == pytest.approx(358.8)


def test_gone_and_delivered_ignore_the_attempt_count() -> None:
    assert decide(Gone(), attempt=99, schedule=SCHEDULE, rand=MID) == DisableSubscription(
        "the endpoint answered 410 Gone"
    )
    assert decide(Delivered(), attempt=99, schedule=SCHEDULE, rand=MID) == MarkDelivered()


def test_scaled_schedule_for_tests() -> None:
    fast = SCHEDULE.scaled(0.001)
    decision = decide(Retry("HTTP 503"), attempt=1, schedule=fast, rand=MID)
    assert isinstance(decision, ScheduleRetry)
    assert decision.delay_s == pytest.approx(0.005)
