"""The subscriptions table: caught up before ready, live after, tombstones delete."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from core.records import Subscription
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable
from tests.factories import subscription

pytestmark = pytest.mark.integration


def _subscription(n: int) -> Subscription:
    return subscription(f"sub-{n}", "task.*", at=datetime.now(UTC))


def test_table_is_ready_only_after_reading_what_was_there(
    settings: Settings, runtime: CodecRuntime
) -> None:
    writer = SubscriptionLog(settings, runtime.codec, client_id="test-writer")
    for n in range(20):
        writer.put(_subscription(n))
    writer.delete("sub-3")
    table = SubscriptionTable(settings, runtime.codec, client_id="test-table")
    table.start()
    try:
        assert table.wait_ready(30)
        assert len(table.snapshot()) == 19
        assert table.get("sub-3") is None
        updated = dataclasses.replace(_subscription(5), status="paused", version=2)
        writer.put(updated)
        assert table.wait_for("sub-5", version=2, timeout_s=30)
        row = table.get("sub-5")
        assert row is not None
        assert row.status == "paused"
        writer.delete("sub-5")
        assert table.wait_for("sub-5", version=None, timeout_s=30)
    finally:
        table.close()
        writer.close()


def test_an_empty_topic_is_ready_at_once(settings: Settings, runtime: CodecRuntime) -> None:
    table = SubscriptionTable(settings, runtime.codec, client_id="test-table")
    table.start()
    try:
        assert table.wait_ready(30)
        assert table.snapshot() == {}
    finally:
        table.close()
