"""Builds the record codec of a process on the log-backed schema registry.

Every writer schema this process uses is published to `hookline.schemas` before first use,
and unknown writer schemas are resolved from that topic. A process that validates events
(the API, the publishers) follows the `event-types` topic for its catalog; the others read
every event's data with its writer's schema and need no catalog of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Final

from confluent_kafka.admin import AdminClient

from hookline.runtime.errors import TableError
from hookline.runtime.event_types import EventTypeTable, LiveCatalog, end_offsets_of
from hookline.runtime.kafka import admin_config, check_login, producer_config, reader_config
from hookline.runtime.schema_store import KafkaSchemaStore
from hookline.runtime.settings import Settings
from schemas.catalog import load_catalog, load_record_schemas
from schemas.records_avro import RecordCodec
from schemas.registry import SchemaRegistry

CATALOG_READY_TIMEOUT_S: Final = 60.0


@dataclass(slots=True)
class CodecRuntime:
    codec: RecordCodec
    registry: SchemaRegistry
    store: KafkaSchemaStore
    catalog: LiveCatalog | None = None

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.table.close()
        self.store.close()


def open_codec(settings: Settings, *, client_id: str, follow_catalog: bool = False) -> CodecRuntime:
    """Load the registry, publish this process's writer schemas, return the codec; with
    `follow_catalog`, its catalog follows the `event-types` topic (read to its end first)."""
    check_login(settings)  # the first Kafka request of every service
    store = KafkaSchemaStore(
        topic=settings.topic("schemas"),
        producer_config=producer_config(settings, client_id=f"{client_id}-schemas"),
        consumer_config=reader_config(settings, client_id=f"{client_id}-schemas"),
    )
    registry = SchemaRegistry(store)
    registry.load()
    shipped = load_catalog()
    codec = RecordCodec(
        records=load_record_schemas(), catalog=shipped, writer_lookup=registry.lookup
    )
    for schema in codec.writer_schemas():
        registry.register(schema)
    if not follow_catalog:
        return CodecRuntime(codec, registry, store)
    table = EventTypeTable(settings, codec, client_id=f"{client_id}-event-types")
    table.start()
    if not table.wait_ready(CATALOG_READY_TIMEOUT_S):
        table.close()
        store.close()
        table.check()
        raise TableError(table.topic, "not read to its end in time")
    admin = AdminClient(admin_config(settings))
    live = LiveCatalog(
        table, defaults=shipped, end_offsets=partial(end_offsets_of, admin, table.topic)
    )
    codec = RecordCodec(records=codec.records, catalog=live, writer_lookup=registry.lookup)
    return CodecRuntime(codec, registry, store, live)
