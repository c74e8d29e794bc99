"""The log-backed schema registry against the real broker: resolution, evolution, errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from hookline.runtime.kafka import admin_config, producer_config, reader_config
from hookline.runtime.schema_store import KafkaSchemaStore
from hookline.runtime.settings import Settings
from schemas.codec import AvroRecord, AvroSchema, decode, encode
from schemas.errors import UndecodableRecord, UnknownWriterSchema
from schemas.registry import SchemaRegistry
from tests.waiting import eventually

pytestmark = pytest.mark.integration

V1: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "dev.hookline.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "count", "type": "long"}],
}
V2: dict[str, Any] = {
    **V1,
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "label", "type": "string", "default": "none"},
    ],
}


def _create(settings: Settings, name: str, *, compact: bool) -> None:
    config = {"cleanup.policy": "compact" if compact else "delete"}
    admin = AdminClient(admin_config(settings))  # must outlive the futures
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=config)]
    )
    futures[name].result(timeout=30)


def _registry(settings: Settings, topic: str) -> tuple[SchemaRegistry, KafkaSchemaStore]:
    store = KafkaSchemaStore(
        topic=topic,
        producer_config=producer_config(settings, client_id="test-schemas"),
        consumer_config=reader_config(settings, client_id="test-schemas"),
        timeout_s=30.0,
    )
    return SchemaRegistry(store), store


def _produce(settings: Settings, topic: str, value: bytes) -> None:
    producer = Producer(producer_config(settings, client_id="test-things"))
    producer.produce(topic, value=value, key=b"k")
    assert producer.flush(30) == 0


def _first_message(settings: Settings, topic: str) -> Message:
    consumer = Consumer(reader_config(settings, client_id=f"test-{uuid.uuid4().hex}"))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

        def first() -> list[Message]:  # a list: a Message with an empty value is falsy
            msg = consumer.poll(1.0)
            return [msg] if msg is not None and msg.error() is None else []

        return eventually(first, f"a message on {topic}", interval_s=0)[0]
    finally:
        consumer.close()


def _decode_located(msg: Message, registry: SchemaRegistry, reader: AvroSchema) -> AvroRecord:
    """Decode as a consumer loop does: a failure names where the record was read from."""
    topic, partition, offset, value = msg.topic(), msg.partition(), msg.offset(), msg.value()
    assert topic is not None
    assert partition is not None
    assert offset is not None
    assert value is not None
    try:
        return decode(value, writer_lookup=registry.lookup, reader=reader)
    except UndecodableRecord as exc:
        raise exc.at(topic, partition, offset) from exc.__cause__


@pytest.fixture
def schemas_topic(settings: Settings, topic_name: Callable[[str], str]) -> str:
    name = topic_name("schemas")
    _create(settings, name, compact=True)
    return name


@pytest.fixture
def data_topic(settings: Settings, topic_name: Callable[[str], str]) -> str:
    name = topic_name("things")
    _create(settings, name, compact=False)
    return name


def test_v1_record_reads_with_a_v2_reader_that_added_a_defaulted_field(
    settings: Settings, schemas_topic: str, data_topic: str
) -> None:
    writer, writer_store = _registry(settings, schemas_topic)
    v1 = AvroSchema.parse(V1)
    writer.register(v1)
    _produce(settings, data_topic, encode(v1, {"id": "a", "count": 7}))
    writer_store.close()

    reader, reader_store = _registry(settings, schemas_topic)
    assert reader.load() == 1
    msg = _first_message(settings, data_topic)
    value = msg.value()
    assert value is not None
    v2 = AvroSchema.parse(V2)
    assert decode(value, writer_lookup=reader.lookup, reader=v2) == {
        "id": "a",
        "count": 7,
        "label": "none",
    }
    reader_store.close()


def test_a_reader_that_never_saw_the_writer_schema_resolves_it_from_the_topic(
    settings: Settings, schemas_topic: str
) -> None:
    reader, reader_store = _registry(settings, schemas_topic)
    assert reader.load() == 0  # the reader is ready before the writer's schema exists

    writer, writer_store = _registry(settings, schemas_topic)
    v1 = AvroSchema.parse(V1)
    writer.register(v1)
    writer.register(v1)  # once per process: the second call publishes nothing
    writer_store.close()

    found = reader.lookup(v1.fingerprint)
    assert found == v1
    assert found is not None
    assert found.canonical == v1.canonical
    assert reader.lookup(bytes(8)) is None
    reader_store.close()


def test_an_undecodable_value_names_its_topic_partition_and_offset(
    settings: Settings, schemas_topic: str, data_topic: str
) -> None:
    reader, reader_store = _registry(settings, schemas_topic)
    reader.load()
    _produce(settings, data_topic, b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x02")
    msg = _first_message(settings, data_topic)
    with pytest.raises(UnknownWriterSchema) as caught:
        _decode_located(msg, reader, AvroSchema.parse(V2))
    error = caught.value
    assert (error.topic, error.partition, error.offset) == (data_topic, 0, 0)
    assert f"{data_topic}[0]@0" in str(error)
    assert error.fingerprint == bytes.fromhex("0123456789abcdef")

    _produce(settings, data_topic, b"not avro at all")
    with pytest.raises(UndecodableRecord, match="bad magic"):
        decode(b"not avro at all", writer_lookup=reader.lookup, reader=AvroSchema.parse(V2))
    reader_store.close()
