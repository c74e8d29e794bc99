"""The acknowledged producer against the real broker: each face returns only once Kafka has
the record, a record the broker refuses is a ProduceFailed, and the BufferError handling
fits a transactional producer whose local queue is smaller than its transaction."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from hookline.runtime.errors import ProduceFailed
from hookline.runtime.kafka import admin_config, producer_config, reader_config
from hookline.runtime.producing import Acks, PolledProducer, produce_within
from hookline.runtime.settings import Settings

pytestmark = pytest.mark.integration

SMALL_RECORD_LIMIT = 1024
"""max.message.bytes of the `small` topic: the broker refuses anything bigger."""


@pytest.fixture
def topics(settings: Settings) -> Iterator[tuple[str, str]]:
    """A topic that takes anything, and one whose records are limited to 1 KiB."""
    plain, small = f"{settings.topic_prefix}.plain", f"{settings.topic_prefix}.small"
    admin = AdminClient(admin_config(settings))
    new = [
        NewTopic(plain, num_partitions=1, replication_factor=1),
        NewTopic(
            small,
            num_partitions=1,
            replication_factor=1,
            config={"max.message.bytes": str(SMALL_RECORD_LIMIT)},
        ),
    ]
    for future in admin.create_topics(new).values():
        future.result()
    yield plain, small
    for future in admin.delete_topics([plain, small]).values():
        future.result()


def _values(settings: Settings, topic: str, *, isolation: str = "read_committed") -> list[bytes]:
    consumer = Consumer(
        reader_config(settings, client_id="test-producing") | {"isolation.level": isolation}
    )
    try:
        tp = TopicPartition(topic, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=30)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        values: list[bytes] = []
        position = 0
        while position < high - 1:  # the last offset may be a transaction marker
            message = consumer.poll(5)
            if message is None:
                break
            assert message.error() is None
            values.append(message.value() or b"")
            position = message.offset() or 0
        return values
    finally:
        consumer.close()


def _producer(
    settings: Settings, *, transactional_id: str | None = None, queue_max: int = 100_000
) -> Producer:
    config = producer_config(
        settings, client_id="test-producing", transactional_id=transactional_id
    )
    return Producer(config | {"queue.buffering.max.messages": queue_max})


def test_acks_return_once_the_broker_has_every_record(
    settings: Settings, topics: tuple[str, str]
) -> None:
    plain, _small = topics
    acks = Acks(_producer(settings, queue_max=5))
    for n in range(50):  # ten times the local queue: the full queue is waited out
        acks.produce(plain, key=b"k", value=b"%d" % n)
    acks.wait()
    assert _values(settings, plain, isolation="read_uncommitted") == [b"%d" % n for n in range(50)]


def test_a_record_the_broker_refuses_fails_the_step(
    settings: Settings, topics: tuple[str, str]
) -> None:
    plain, small = topics
    acks = Acks(_producer(settings))
    acks.produce(plain, key=None, value=b"fine")
    acks.produce(small, key=None, value=os.urandom(4 * SMALL_RECORD_LIMIT))
    with pytest.raises(ProduceFailed) as caught:
        acks.wait()
    assert caught.value.topic == small


async def test_the_asyncio_face_awaits_the_acknowledgement(
    settings: Settings, topics: tuple[str, str]
) -> None:
    plain, small = topics
    polled = PolledProducer(_producer(settings), name="test-producing")
    try:
        await polled.send(plain, key="k", value=b"awaited")
        with pytest.raises(ProduceFailed):
            await polled.send(small, key="k", value=os.urandom(4 * SMALL_RECORD_LIMIT))
        polled.submit(plain, key="k", value=b"submitted").result(30)
    finally:
        assert polled.close(30) == 0
    assert _values(settings, plain, isolation="read_uncommitted") == [b"awaited", b"submitted"]


def test_a_transaction_bigger_than_the_local_queue_commits(
    settings: Settings, topics: tuple[str, str]
) -> None:
    plain, _small = topics
    producer = _producer(
        settings,
        transactional_id=f"test-producing-{uuid.uuid4().hex}",
        queue_max=5,
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(50):
        produce_within(producer, plain, key=b"k", value=b"%d" % n, timeout_s=30)
    producer.commit_transaction(30)
    assert _values(settings, plain) == [b"%d" % n for n in range(50)]
