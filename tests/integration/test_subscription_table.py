"""The subscriptions table, and the compacted table under it: caught up before ready, live
after, tombstones delete, undecodable records skipped, a stopped reader recorded for good."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.records import Subscription
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.errors import TableError
from hookline.runtime.kafka import admin_config, producer_config
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable
from hookline.runtime.table import CompactedTable
from schemas.errors import UndecodableRecord
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


def _compacted_topic(settings: Settings, topic_name: Callable[[str], str]) -> str:
    name = topic_name("table")
    admin = AdminClient(admin_config(settings))  # must outlive the futures
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=2, replication_factor=1, config={"cleanup.policy": "compact"}
            )
        ]
    )
    futures[name].result(timeout=30)
    return name


def _text(value: bytes) -> str:
    if value == b"not text":
        raise UndecodableRecord("not text")
    if value == b"poison":
        raise RuntimeError("a decode hook with a bug")
    return value.decode()


def _write(settings: Settings, topic: str, records: dict[bytes, bytes], *, txn: bool) -> None:
    config = producer_config(
        settings,
        client_id="test-table-writer",
        transactional_id=f"test-{uuid.uuid4().hex}" if txn else None,
    )
    producer = Producer(config)
    if txn:
        producer.init_transactions(30)
        producer.begin_transaction()
    for key, value in records.items():
        producer.produce(topic, key=key, value=value, partition=0)
    if txn:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def test_a_missing_topic_stops_the_table_with_one_line_saying_what_to_do(
    settings: Settings,
) -> None:
    topic = f"test.missing.{uuid.uuid4().hex[:12]}"
    table = CompactedTable(settings, topic, client_id="test-table", decode=_text)
    table.start()
    try:
        assert not table.wait_ready(30)
        assert not table.ready
        failure = table.failure
        assert isinstance(failure, TableError)
        assert failure.topic == topic
        assert str(failure) == (
            f"table of {topic}: the topic is missing; run 'hookline topics ensure'"
        )
        with pytest.raises(TableError):
            table.check()
    finally:
        table.close()


def test_the_table_is_ready_through_a_transaction_marker_and_skips_undecodable_records(
    settings: Settings, topic_name: Callable[[str], str]
) -> None:
    topic = _compacted_topic(settings, topic_name)
    # the commit marker takes the last offset: no record reaches the end offset
    _write(settings, topic, {b"a": b"one", b"b": b"not text", b"c": b"three"}, txn=True)
    table = CompactedTable(settings, topic, client_id="test-table", decode=_text)
    table.start()
    try:
        assert table.wait_ready(30), table.failure
        assert dict(table.snapshot()) == {"a": "one", "c": "three"}
        table.check()
    finally:
        table.close()


def test_a_reader_that_stops_is_recorded_and_never_restarted(
    settings: Settings, topic_name: Callable[[str], str]
) -> None:
    topic = _compacted_topic(settings, topic_name)
    table = CompactedTable(settings, topic, client_id="test-table", decode=_text)
    table.start()
    try:
        assert table.wait_ready(30)
        _write(settings, topic, {b"a": b"poison"}, txn=False)
        assert not table.wait_until(lambda rows: "a" in rows, timeout_s=30)
        failure = table.failure
        assert isinstance(failure, TableError)
        assert "a decode hook with a bug" in str(failure)
        assert isinstance(failure.__cause__, RuntimeError)
        assert not table.ready
        with pytest.raises(TableError) as raised:
            table.check()
        assert raised.value is failure
    finally:
        table.close()
