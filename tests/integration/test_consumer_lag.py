"""`hookline_consumer_lag` against the real broker: a consumer built by `consumer_config`
with the gauge reports what it has not read yet, up to the last stable offset (records of a
transaction still open are not counted), falls to 0 once it read everything, and drops the
series when its partitions are revoked."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.kafka import admin_config, consumer_config, producer_config
from hookline.runtime.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration

COMMITTED = 20
OPEN = 5
STATISTICS_MS = 200
"""Statistics every 200 ms rather than 5 s, so the test waits less (a tuning users may make
through HOOKLINE_KAFKA_CONFIG too)."""


@pytest.fixture
def topic(settings: Settings, topic_name: Callable[[str], str]) -> str:
    name = topic_name("lag")
    admin = AdminClient(admin_config(settings))
    new = NewTopic(name, num_partitions=2, replication_factor=1)
    admin.create_topics([new])[name].result()
    return name


@pytest.fixture
def open_transaction(settings: Settings, topic: str) -> Iterator[Producer]:
    """COMMITTED records over both partitions (by a plain producer: a transaction would add
    a commit marker, an offset of its own the consumer may or may not have passed), then
    OPEN more in a transaction left open (aborted at the end)."""
    plain = Producer(producer_config(settings, client_id="test-lag"))
    for n in range(COMMITTED):
        plain.produce(topic, value=b"%d" % n, partition=n % 2)
    assert plain.flush(30) == 0
    producer = Producer(
        producer_config(
            settings, client_id="test-lag-tx", transactional_id=f"test-lag-{uuid.uuid4().hex}"
        )
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(OPEN):
        producer.produce(topic, value=b"open %d" % n, partition=n % 2)
    producer.flush(30)
    yield producer
    producer.abort_transaction(30)


def test_the_gauge_follows_what_the_consumer_has_left_to_read(
    settings: Settings, topic: str, open_transaction: Producer
) -> None:
    registry = CollectorRegistry()
    group = f"{settings.topic_prefix}.lag"
    config = consumer_config(
        settings, group_id=group, client_id="test-lag", lag=ConsumerLag.of(registry)
    )
    consumer = Consumer(config | {"statistics.interval.ms": STATISTICS_MS})

    def lag() -> float | None:
        return registry.get_sample_value("hookline_consumer_lag", {"group": group, "topic": topic})

    try:
        consumer.subscribe([topic])
        read: list[int] = []

        def read_one_of_each_and_more() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                read.append(message.partition())
            return len(read) >= 6 and set(read) == {0, 1}

        eventually(read_one_of_each_and_more, "records read from both partitions")
        consumer.pause(consumer.assignment())

        def lag_is(expected: int) -> Callable[[], bool]:
            return lambda: consumer.poll(0.1) is None and lag() == expected

        eventually(
            lag_is(COMMITTED - len(read)),
            "lag of the committed records unread",
            detail=lag,
        )

        consumer.resume(consumer.assignment())
        eventually(
            lambda: (consumer.poll(0.1), lag() == 0)[1], "lag 0 once all is read", detail=lag
        )

        consumer.unsubscribe()
        eventually(lambda: (consumer.poll(0.1), lag() is None)[1], "series gone", detail=lag)
    finally:
        consumer.close()
