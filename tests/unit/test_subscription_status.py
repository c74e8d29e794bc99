"""Unit tests of a subscription's status changes (`core.subscription_status`) and of the
reason the no-success window gives (`core.lanes.no_success_reason`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.lanes import no_success_reason
from core.subscription_status import (
    DISABLED_BY_REQUEST,
    HeldWindow,
    held_by_pause,
    not_active_detail,
    with_status,
)
from tests.factories import subscription

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=3)


def test_pausing_records_when_and_resuming_clears_it() -> None:
    paused = with_status(subscription("s", "task.*"), "paused", now=T0)
    assert (paused.status, paused.paused_at) == ("paused", T0)
    resumed = with_status(paused, "active", now=T1)
    assert (resumed.status, resumed.paused_at, resumed.disabled_at) == ("active", None, None)


def test_disabling_by_request_says_so_and_re_enabling_clears_the_reason() -> None:
    disabled = with_status(subscription("s", "task.*"), "disabled", now=T0)
    assert (disabled.disabled_reason, disabled.disabled_at) == (DISABLED_BY_REQUEST, T0)
    enabled = with_status(disabled, "active", now=T1)
    assert (enabled.disabled_reason, enabled.disabled_at) == (None, None)


def test_the_same_status_keeps_the_deliverers_reason() -> None:
    gone = subscription(
        "s", "task.*", status="disabled", disabled_reason="the endpoint answered 410 Gone"
    )
    assert with_status(gone, "disabled", now=T1) is gone


def test_a_resume_holds_the_window_from_the_pause_to_the_resume() -> None:
    paused = with_status(subscription("s", "task.*"), "paused", now=T0)
    resumed = with_status(subscription("s", "task.*", updated_at=T1), "active", now=T1)
    assert held_by_pause(paused, resumed) == HeldWindow(T0, T1)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("active", "active"),
        ("paused", "paused"),
        ("paused", "disabled"),
        ("disabled", "active"),
    ],
)
def test_only_a_resume_from_paused_holds_a_window(before: str, after: str) -> None:
    old = subscription("s", "task.*", status=before, paused_at=T0)
    new = subscription("s", "task.*", status=after, updated_at=T1)
    assert held_by_pause(old, new) is None


def test_a_pause_of_unknown_start_holds_nothing() -> None:
    """A record paused before pauses were timed has no window to send."""
    old = subscription("s", "task.*", status="paused")
    assert held_by_pause(old, subscription("s", "task.*", updated_at=T1)) is None


def test_the_refusal_names_the_state_its_reason_and_the_way_back() -> None:
    gone = subscription(
        "s",
        "task.*",
        status="disabled",
        disabled_reason="the endpoint answered 410 Gone",
        disabled_at=T0,
    )
    detail = not_active_detail(gone)
    assert "disabled (the endpoint answered 410 Gone) since 2026-05-01" in detail
    assert 'PATCH /v1/subscriptions/s {"status": "active"}' in detail
    assert "is paused since" in not_active_detail(subscription("s", status="paused", paused_at=T0))


@pytest.mark.parametrize(
    ("window_s", "reason"),
    [
        (5 * 86_400.0, "no successful delivery for 5 days"),
        (86_400.0, "no successful delivery for 1 day"),
        (7_200.0, "no successful delivery for 2 hours"),
        (90.0, "no successful delivery for 90 seconds"),
        (120.0, "no successful delivery for 2 minutes"),
        (0.5, "no successful delivery for 0.5 seconds"),
    ],
)
def test_the_no_success_reason_uses_the_largest_whole_unit(window_s: float, reason: str) -> None:
    assert no_success_reason(window_s) == reason
