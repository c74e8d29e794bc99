"""`ensure_topics` against the real broker: policies as the design says, idempotent, strict."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from hookline.runtime.errors import TopicError
from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Settings
from hookline.runtime.topics import RETRY_TIERS, ensure_topics

pytestmark = pytest.mark.integration


def _configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AdminClient(admin_config(settings))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    return {
        r.name: {k: v.value for k, v in f.result().items()}
        for r, f in admin.describe_configs(resources).items()
    }


def test_ensure_creates_every_topic_with_its_policy(settings: Settings) -> None:
    report = ensure_topics(settings)
    expected = {
        settings.topic(n)
        for n in (
            "events",
            "subscriptions",
            "schemas",
            "deliveries",
            "deliverer-backlog",
            "attempts",
            "dead-letters",
            "control",
            "tokens",
            "event-types",
        )
    } | {settings.topic(f"retry.{t}") for t in RETRY_TIERS}
    assert set(report.created) == expected
    configs = _configs(settings, sorted(expected))
    compacted = (
        "subscriptions",
        "schemas",
        "control",
        "deliverer-backlog",
        "tokens",
        "event-types",
    )
    for name in compacted:
        assert configs[settings.topic(name)]["cleanup.policy"] == "compact"
    for name in ("events", "deliveries", "attempts", "dead-letters", "retry.5s"):
        assert configs[settings.topic(name)]["cleanup.policy"] == "delete"
    assert configs[settings.topic("events")]["retention.ms"] == str(settings.events_retention_ms)
    metadata = AdminClient(admin_config(settings)).list_topics(timeout=10)
    assert len(metadata.topics[settings.topic("deliveries")].partitions) == settings.partitions
    backlog = metadata.topics[settings.topic("deliverer-backlog")]
    assert len(backlog.partitions) == settings.partitions, "the backlog mirrors deliveries"


def test_ensure_is_idempotent(settings: Settings) -> None:
    ensure_topics(settings)
    again = ensure_topics(settings)
    assert again.created == ()
    assert len(again.existing) == 16


def test_a_topic_with_the_wrong_policy_fails_with_its_name(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    wrong = settings.topic("subscriptions")
    admin.create_topics([NewTopic(wrong, num_partitions=1, replication_factor=1)])[wrong].result()
    with pytest.raises(TopicError) as caught:
        ensure_topics(settings)
    assert caught.value.topic == wrong
    assert str(caught.value) == (
        f"topic {wrong}: has cleanup.policy=delete, the design needs compact"
    )
