"""Unit tests of core.attempts: the records planned after an attempt, or instead of one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from core.attempts import (
    EXCERPT_CHARS,
    HEADER_VALUE_KEPT_CHARS,
    REQUEST_BODY_KEPT_BYTES,
    RESPONSE_HEADERS_KEPT,
    Observed,
    Source,
    Unsendable,
    dead_letter_id,
    excerpt,
    is_due,
    plan_attempt,
    plan_unsendable,
)
from core.outcome import (
    DeadLetter,
    Delivered,
    DisableSubscription,
    Fail,
    Gone,
    MarkDelivered,
    Retry,
    ScheduleRetry,
)
from core.records import DeliveryCommand, Timings

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
SOURCE = Source("hookline.deliveries", 2, 41)
COMMAND = DeliveryCommand(
    delivery_id="d-1",
    event_id="e-1",
    event_type="task.created",
    tenant="acme",
    subscription_id="s-1",
    occurred_at=NOW,
    payload=b"{}",
    attempt=2,
    created_at=NOW,
    not_before=None,
    origin="route",
    job_id=None,
    last_error="HTTP 500",
)
OBSERVED = Observed(at=NOW, duration_ms=12, status_code=500, response_body=b"oops")


def test_delivered_writes_only_the_attempt() -> None:
    seen = Observed(at=NOW, duration_ms=3, status_code=204, response_body=None)
    plan = plan_attempt(COMMAND, seen, Delivered(), MarkDelivered(), now=NOW, source=SOURCE)
    assert plan.attempt is not None
    assert (plan.attempt.attempt, plan.attempt.outcome, plan.attempt.error) == (
        3,
        "delivered",
        None,
    )
    assert (plan.retry, plan.dead_letter, plan.disable_reason) == (None, None, None)


def test_a_retry_is_due_after_the_delay() -> None:
    decision = ScheduleRetry(delay_s=300.0)
    plan = plan_attempt(COMMAND, OBSERVED, Retry("HTTP 500"), decision, now=NOW, source=SOURCE)
    due = NOW + timedelta(seconds=300)
    assert plan.attempt is not None
    assert plan.attempt.outcome == "retrying"
    assert plan.attempt.next_attempt_at == due
    assert plan.attempt.response_excerpt == "oops"
    assert plan.retry is not None
    assert (plan.retry.attempt, plan.retry.not_before, plan.retry.last_error) == (
        3,
        due,
        "HTTP 500",
    )
    assert plan.retry.event_id == COMMAND.event_id, "the webhook-id never changes"


def test_exhausted_dead_letters_the_command_with_its_last_error() -> None:
    decision = DeadLetter("gave up after 3 attempts; last: HTTP 404")
    plan = plan_attempt(COMMAND, OBSERVED, Fail("HTTP 404"), decision, now=NOW, source=SOURCE)
    assert plan.attempt is not None
    assert plan.attempt.outcome == "dead"
    letter = plan.dead_letter
    assert letter is not None
    assert letter.command is not None
    assert (letter.command.attempt, letter.command.last_error) == (3, "HTTP 404")
    assert letter.error == "gave up after 3 attempts; last: HTTP 404"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "hookline.deliveries",
        2,
        41,
    )
    assert letter.id == dead_letter_id("d-1", 3)
    assert plan.retry is None


def test_gone_fails_the_delivery_and_disables() -> None:
    decision = DisableSubscription("the endpoint answered 410 Gone")
    plan = plan_attempt(COMMAND, OBSERVED, Gone(), decision, now=NOW, source=SOURCE)
    assert plan.attempt is not None
    assert (plan.attempt.outcome, plan.attempt.error) == ("failed", "HTTP 410 Gone")
    assert plan.disable_reason == "the endpoint answered 410 Gone"
    assert plan.dead_letter is None


def test_deleted_and_disabled_drop_paused_dead_letters() -> None:
    whys: tuple[Unsendable, ...] = ("deleted", "disabled")
    for why in whys:
        plan = plan_unsendable(COMMAND, why, now=NOW, source=SOURCE)
        assert plan.attempt is not None
        assert (plan.attempt.outcome, plan.attempt.error) == ("failed", f"subscription {why}")
        assert plan.attempt.status_code is None
        assert plan.dead_letter is None
    paused = plan_unsendable(COMMAND, "paused", now=NOW, source=SOURCE)
    assert paused.attempt is not None
    assert paused.attempt.outcome == "dead"
    assert paused.dead_letter is not None
    assert paused.dead_letter.reason == "subscription paused"
    assert paused.dead_letter.command is not None
    assert paused.dead_letter.command.attempt == 2, "no attempt was made"


def test_excerpt_is_bounded_and_tolerates_bad_utf8() -> None:
    assert excerpt(None) is None
    assert excerpt(b"") is None
    assert excerpt(b"\xff ok") == "\ufffd ok"
    assert len(excerpt(b"x" * 100_000) or "") == EXCERPT_CHARS


def test_due() -> None:
    assert is_due(COMMAND, NOW)
    later = NOW + timedelta(seconds=1)
    held = dataclasses.replace(COMMAND, not_before=later)
    assert not is_due(held, NOW)
    assert is_due(held, later)


def test_a_redelivery_numbers_its_attempts_on_and_keeps_its_own_schedule() -> None:
    """Regression: a redeliver was recorded as `attempt: 1` again, with no origin."""
    redelivery = dataclasses.replace(COMMAND, attempt=0, origin="redeliver", prior_attempts=3)
    plan = plan_attempt(
        redelivery, OBSERVED, Retry("HTTP 500"), ScheduleRetry(5.0), now=NOW, source=SOURCE
    )
    assert plan.attempt is not None
    assert (plan.attempt.attempt, plan.attempt.origin) == (4, "redeliver")
    assert plan.retry is not None
    assert (plan.retry.attempt, plan.retry.prior_attempts) == (1, 3), "its own schedule"
    after = plan_attempt(
        plan.retry, OBSERVED, Retry("HTTP 500"), DeadLetter("exhausted"), now=NOW, source=SOURCE
    )
    assert after.attempt is not None
    assert (after.attempt.attempt, after.attempt.origin) == (5, "retry")
    assert after.dead_letter is not None
    assert after.dead_letter.id == dead_letter_id("d-1", 5)
    assert after.dead_letter.id != dead_letter_id("d-1", 2), "not the first run's letter"


def test_the_attempt_keeps_the_request_redacted_and_the_response_bounded() -> None:
    seen = Observed(
        at=NOW,
        duration_ms=30,
        status_code=200,
        response_body=b"ok",
        request_headers=(
            ("Host", "example.com"),
            ("webhook-signature", "v1,c2lnbmVk v1,b2xkZXI="),
            ("Authorization", "Bearer s3cret"),
        ),
        request_body=b"x" * (REQUEST_BODY_KEPT_BYTES + 10),
        response_headers=(
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("X-Long", "v" * 5000),
            *((f"x-{n}", "1") for n in range(RESPONSE_HEADERS_KEPT + 5)),
        ),
        timings=Timings(dns_ms=None, connect_ms=2, ttfb_ms=25),
    )
    plan = plan_attempt(COMMAND, seen, Delivered(), MarkDelivered(), now=NOW, source=SOURCE)
    assert plan.attempt is not None
    assert plan.attempt.request_headers == {
        "host": "example.com",
        "webhook-signature": "v1,<redacted> v1,<redacted>",
        "authorization": "<redacted>",
    }
    assert len(plan.attempt.request_body or "") == REQUEST_BODY_KEPT_BYTES
    kept = plan.attempt.response_headers
    assert kept["set-cookie"] == "a=1, b=2"
    assert len(kept["x-long"]) == HEADER_VALUE_KEPT_CHARS
    assert len(kept) == RESPONSE_HEADERS_KEPT
    assert plan.attempt.timings == Timings(dns_ms=None, connect_ms=2, ttfb_ms=25)
    assert plan.attempt.origin == "retry", "attempt 3 of a routed command"
