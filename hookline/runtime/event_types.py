"""The event-type catalog as log state: the compacted `hookline.event-types` topic, keyed by
type name, read into a table every interested process follows.

`LiveCatalog` is the catalog as of now (the shipped types as defaults under what the topic
holds), so a type or version registered anywhere is seen everywhere without a restart.
`EventTypeLog` writes records with acks=all; `register_builtin_types` writes the shipped
types as version 1 where the topic has none yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from core.errors import HooklineError
from core.event_types import EventTypeRecord, newest_revision
from core.records import utc_ms
from hookline.runtime.errors import ProduceFailed
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from hookline.runtime.table import CompactedTable
from schemas.catalog import EventCatalog, builtin_record, catalog_of, load_catalog
from schemas.codec import AvroSchema
from schemas.records_avro import RecordCodec
from schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S: Final = 30.0
REFRESH_TIMEOUT_S: Final = 5.0


def end_offsets_of(admin: AdminClient, topic: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """Every partition's end offset, asked of an admin client (no consumer of its own)."""
    metadata = admin.list_topics(topic, timeout=timeout_s).topics[topic]
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in metadata.partitions}
    futures = admin.list_offsets(request, request_timeout=timeout_s)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


class EventTypeTable(CompactedTable[EventTypeRecord]):
    """Event types by name; a record of an older revision than the row's is ignored."""

    def __init__(self, settings: Settings, codec: RecordCodec, *, client_id: str) -> None:
        super().__init__(
            settings,
            settings.topic("event-types"),
            client_id=client_id,
            decode=codec.decode_event_type,
            latest=newest_revision,
        )

    def wait_for(self, name: str, *, revision: int, timeout_s: float) -> bool:
        """Wait until the table holds `revision` (or newer) of a type: a writer's read-back."""

        def holds(rows: Mapping[str, EventTypeRecord]) -> bool:
            row = rows.get(name)
            return row is not None and row.revision >= revision

        return self.wait_until(holds, timeout_s=timeout_s)


class LiveCatalog:
    """The catalog the table's rows make over the shipped types: a `CatalogSource`.

    The fold runs again only when the table swapped its snapshot, so asking on every
    request costs an identity check.
    """

    def __init__(
        self,
        table: EventTypeTable,
        *,
        defaults: EventCatalog,
        end_offsets: Callable[[], Mapping[int, int]],
    ) -> None:
        self.table = table
        self.defaults = defaults
        self._end_offsets = end_offsets
        self._folded: tuple[Mapping[str, EventTypeRecord], EventCatalog] | None = None

    def current(self) -> EventCatalog:
        rows = self.table.snapshot()
        folded = self._folded
        if folded is not None and folded[0] is rows:
            return folded[1]
        catalog = catalog_of(rows.values(), defaults=self.defaults)
        self._folded = (rows, catalog)  # one assignment: threads see either fold whole
        return catalog

    def refresh(self) -> EventCatalog:
        """The catalog once the table has read what was written before now (waiting at most
        `REFRESH_TIMEOUT_S`): a type registered a moment ago through another process."""
        try:
            ends = self._end_offsets()
        except (KafkaException, KeyError) as exc:  # KeyError: the topic is not in the metadata
            log.warning("cannot read %s's end offsets: %r", self.table.topic, exc)
            return self.current()
        self.table.wait_caught_up(ends, timeout_s=REFRESH_TIMEOUT_S)
        return self.current()

    def record(self, name: str) -> EventTypeRecord | None:
        """The type's topic record, or a shipped type's version 1 not yet registered."""
        row = self.table.get(name)
        if row is not None:
            return row
        entry = self.defaults.types.get(name)
        return None if entry is None else builtin_record(entry, now=utc_ms(datetime.now(UTC)))


class EventTypeWriteError(HooklineError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"event type {name}: write failed: {reason}")
        self.name = name


class EventTypeLog:
    """Writes event types the blocking way (the command line); the API writes through its
    own acknowledged producer. A version's schema goes to the schema registry first, so a
    record on `event-types` never names a schema a reader cannot resolve."""

    def __init__(
        self, settings: Settings, codec: RecordCodec, registry: SchemaRegistry, *, client_id: str
    ) -> None:
        self._topic = settings.topic("event-types")
        self._codec = codec
        self._registry = registry
        self._producer = Producer(producer_config(settings, client_id=client_id, linger_ms=0))

    def put(self, record: EventTypeRecord, *, timeout_s: float = WRITE_TIMEOUT_S) -> None:
        for version in record.versions:
            self._registry.register(AvroSchema.from_json(version.schema))
        value = self._codec.encode_event_type(record)
        try:
            Acks(self._producer, timeout_s=timeout_s).write(
                self._topic, key=record.name, value=value
            )
        except ProduceFailed as exc:
            raise EventTypeWriteError(record.name, exc.reason) from exc

    def close(self) -> None:
        self._producer.flush(10)


def missing_builtins(table: EventTypeTable, *, now: datetime) -> list[EventTypeRecord]:
    """The shipped types the topic does not hold yet, as version 1 records."""
    rows = table.snapshot()
    return [builtin_record(e, now=now) for e in load_catalog().entries() if e.name not in rows]


def register_builtin_types(table: EventTypeTable, writer: EventTypeLog) -> list[str]:
    """Write the shipped types the topic lacks (idempotent); returns their names. Two
    processes racing both write the same version 1: the later record wins, equal to the
    first but for its timestamps."""
    written = []
    for record in missing_builtins(table, now=utc_ms(datetime.now(UTC))):
        writer.put(record)
        written.append(record.name)
    return written
