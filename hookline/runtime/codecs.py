"""Builds the record codec of a process on the log-backed schema registry.

Every writer schema this process uses is published to `hookline.schemas` before first use,
and unknown writer schemas are resolved from that topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookline.runtime.kafka import check_login, producer_config, reader_config
from hookline.runtime.schema_store import KafkaSchemaStore
from hookline.runtime.settings import Settings
from schemas.catalog import load_catalog, load_record_schemas
from schemas.records_avro import RecordCodec
from schemas.registry import SchemaRegistry


@dataclass(slots=True)
class CodecRuntime:
    codec: RecordCodec
    registry: SchemaRegistry
    store: KafkaSchemaStore

    def close(self) -> None:
        self.store.close()


def open_codec(settings: Settings, *, client_id: str) -> CodecRuntime:
    """Load the registry, publish this process's writer schemas, return the codec."""
    check_login(settings)  # the first Kafka request of every service
    store = KafkaSchemaStore(
        topic=settings.topic("schemas"),
        producer_config=producer_config(settings, client_id=f"{client_id}-schemas"),
        consumer_config=reader_config(settings, client_id=f"{client_id}-schemas"),
    )
    registry = SchemaRegistry(store)
    registry.load()
    codec = RecordCodec(
        records=load_record_schemas(), catalog=load_catalog(), writer_lookup=registry.lookup
    )
    for schema in codec.writer_schemas():
        registry.register(schema)
    return CodecRuntime(codec, registry, store)
