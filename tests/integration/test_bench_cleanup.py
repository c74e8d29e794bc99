"""A benchmark run removes what it made: its prefix's topics, groups and schema, and no more."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from api.model.db import ensure_schema, schema_name
from bench.cleanup import drop_prefix
from hookline.runtime.kafka import admin_config, consumer_config
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def test_drop_prefix_removes_the_runs_topics_groups_and_schema_only(settings: Settings) -> None:
    neighbour = settings.with_changes(topic_prefix=f"{settings.topic_prefix}x")
    for each in (settings, neighbour):
        ensure_topics(each)
    group = settings.group("router")
    consumer = Consumer(consumer_config(settings, group_id=group, client_id="bench-cleanup"))
    consumer.commit(offsets=[TopicPartition(settings.topic("events"), 0, 0)], asynchronous=False)
    consumer.close()
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.value, autocommit=True) as conn:
        ensure_schema(conn, schema_name(settings))
    admin = AdminClient(admin_config(settings))

    def groups() -> set[str]:
        return {g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid}

    assert group in groups()

    drop_prefix(settings)

    def topics() -> set[str]:
        return set(admin.list_topics(timeout=10).topics)

    eventually(lambda: settings.topic("events") not in topics(), "the topics deleted")
    left = topics()
    assert not [t for t in left if t.startswith(f"{settings.topic_prefix}.")]
    assert neighbour.topic("events") in left, "a neighbouring prefix is not ours"
    assert group not in groups()
    with psycopg.connect(settings.database_url.value) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (schema_name(settings),),
        ).fetchone()
    assert found is None
