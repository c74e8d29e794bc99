"""Consumer lag from librdkafka's statistics JSON: the per-topic sums and the gauge's series.

The samples follow what librdkafka 2.8.0 emits for a subscribed read_committed consumer
(field names as in its STATISTICS.md; shapes captured from the local broker): every
partition carries `desired`, `unknown`, `app_offset`, `hi_offset`, `ls_offset`, with -1001
for what is not known yet, and each topic also lists librdkafka's internal partition -1.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from hookline.runtime.consumer_lag import STATISTICS_INTERVAL_MS, ConsumerLag, lag_by_topic
from hookline.runtime.kafka import consumer_config
from hookline.runtime.settings import Settings

UNKNOWN = -1001


def _partition(
    number: int,
    *,
    app: int,
    hi: int,
    ls: int | None = None,
    desired: bool = True,
    committed: int = UNKNOWN,
) -> dict[str, Any]:
    ls = hi if ls is None else ls
    return {
        "partition": number,
        "broker": 1,
        "leader": 1,
        "desired": desired,
        "unknown": False,
        "msgq_cnt": 0,
        "fetchq_cnt": 0,
        "fetch_state": "active" if desired else "stopped",
        "query_offset": -2,
        "next_offset": app,
        "app_offset": app,
        "stored_offset": app,
        "committed_offset": committed,
        "eof_offset": UNKNOWN,
        "lo_offset": 0,
        "hi_offset": hi,
        "ls_offset": ls,
        "consumer_lag": -1 if committed == UNKNOWN else max(0, ls - committed),
        "consumer_lag_stored": max(0, ls - app) if app != UNKNOWN else -1,
        "rxmsgs": 0,
    }


_INTERNAL = _partition(-1, app=UNKNOWN, hi=UNKNOWN, desired=False) | {"fetch_state": "none"}


def _stats(topics: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "name": "hookline-deliverer#consumer-1",
        "client_id": "hookline-deliverer",
        "type": "consumer",
        "ts": 3075091267661,
        "time": 1764950400,
        "brokers": {},
        "topics": {
            name: {
                "topic": name,
                "age": 5010,
                "metadata_age": 4990,
                "partitions": {str(p["partition"]): p for p in [*partitions, _INTERNAL]},
            }
            for name, partitions in topics.items()
        },
        "cgrp": {"state": "up", "join_state": "steady", "assignment_size": 2},
    }


def test_lag_sums_each_topics_assigned_partitions() -> None:
    stats = _stats(
        {
            "deliveries": [_partition(0, app=40, hi=100), _partition(1, app=90, hi=100)],
            "attempts": [_partition(3, app=7, hi=7)],
        }
    )
    assert lag_by_topic(stats, read_committed=True) == {"deliveries": 70, "attempts": 0}


def test_a_read_committed_consumer_counts_to_the_last_stable_offset() -> None:
    # 20 records of an open transaction sit past the last stable offset: not readable yet
    stats = _stats({"events": [_partition(0, app=40, hi=120, ls=100)]})
    assert lag_by_topic(stats, read_committed=True) == {"events": 60}
    assert lag_by_topic(stats, read_committed=False) == {"events": 80}


def test_the_position_is_what_the_application_read_not_the_committed_offset() -> None:
    # the projector keeps its offsets in PostgreSQL: nothing is ever committed to Kafka
    stats = _stats({"deliveries": [_partition(0, app=95, hi=100, committed=UNKNOWN)]})
    assert lag_by_topic(stats, read_committed=True) == {"deliveries": 5}


def test_partitions_whose_position_or_end_is_unknown_are_left_out() -> None:
    stats = _stats(
        {
            "events": [
                _partition(0, app=UNKNOWN, hi=500),  # assigned, nothing read yet
                _partition(1, app=10, hi=UNKNOWN, ls=UNKNOWN),  # no fetch answered yet
                _partition(2, app=10, hi=12),
            ]
        }
    )
    assert lag_by_topic(stats, read_committed=True) == {"events": 2}


def test_partitions_not_assigned_are_left_out() -> None:
    # revoked: librdkafka keeps the partition in its statistics, no longer desired
    revoked = _partition(0, app=3, hi=900, desired=False)
    stats = _stats({"events": [revoked, _partition(1, app=10, hi=11)], "gone": [revoked]})
    assert lag_by_topic(stats, read_committed=True) == {"events": 1}


def test_a_position_past_a_stale_end_counts_nothing_rather_than_less() -> None:
    stats = _stats({"events": [_partition(0, app=130, hi=120), _partition(1, app=0, hi=4)]})
    assert lag_by_topic(stats, read_committed=True) == {"events": 4}


def _lag(registry: CollectorRegistry, group: str, topic: str) -> float | None:
    return registry.get_sample_value("hookline_consumer_lag", {"group": group, "topic": topic})


def test_the_hook_keeps_only_the_latest_statistics() -> None:
    registry = CollectorRegistry()
    hook = ConsumerLag.of(registry).hook("hookline.deliverer", read_committed=True)
    hook(orjson.dumps(_stats({"deliveries": [_partition(0, app=1, hi=9)]})).decode())
    hook(orjson.dumps(_stats({"retry.1m": [_partition(0, app=2, hi=5)]})).decode())
    assert _lag(registry, "hookline.deliverer", "deliveries") is None
    assert _lag(registry, "hookline.deliverer", "retry.1m") == 3


def test_groups_sharing_a_registry_keep_their_own_series() -> None:
    registry = CollectorRegistry()
    assert ConsumerLag.of(registry) is ConsumerLag.of(registry)
    router = ConsumerLag.of(registry).hook("hookline.router", read_committed=True)
    projector = ConsumerLag.of(registry).hook("hookline.projector", read_committed=True)
    router(orjson.dumps(_stats({"events": [_partition(0, app=1, hi=4)]})).decode())
    projector(orjson.dumps(_stats({"deliveries": [_partition(0, app=1, hi=2)]})).decode())
    projector(orjson.dumps(_stats({})).decode())
    assert _lag(registry, "hookline.router", "events") == 3
    assert _lag(registry, "hookline.projector", "deliveries") is None


def test_statistics_it_cannot_read_are_logged_once_per_kind_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    hook = ConsumerLag.of(registry).hook("hookline.router", read_committed=True)
    hook(orjson.dumps(_stats({"events": [_partition(0, app=1, hi=4)]})).decode())
    with caplog.at_level(logging.WARNING, logger="hookline.runtime.consumer_lag"):
        for _ in range(3):
            hook("{not json")
            hook(orjson.dumps({"topics": {"events": {"partitions": {"0": {}}}}}).decode())
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "consumer lag of hookline.router not read from statistics"
    ] * 2
    assert _lag(registry, "hookline.router", "events") == 3  # the last good value stays


def test_a_consumer_given_the_gauge_reports_statistics_to_it() -> None:
    settings = Settings(kafka_bootstrap="broker:9092")
    registry = CollectorRegistry()
    config = consumer_config(settings, group_id="g", client_id="c", lag=ConsumerLag.of(registry))
    assert config["statistics.interval.ms"] == STATISTICS_INTERVAL_MS
    config["stats_cb"](orjson.dumps(_stats({"t": [_partition(0, app=0, hi=6)]})).decode())
    assert _lag(registry, "g", "t") == 6
    assert "stats_cb" not in consumer_config(settings, group_id="g", client_id="c")
