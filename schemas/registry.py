"""The log-backed schema registry: writer schemas by fingerprint, kept on a compacted topic.

A writer registers each schema before first use (published once per process, acknowledged
by all in-sync replicas); a reader that meets an unknown fingerprint re-reads the topic to
its end before giving up. `SchemaRegistry` holds the rules and the memory; a `SchemaStore`
does the I/O (`hookline.runtime.schema_store.KafkaSchemaStore` in services, an in-memory fake
in unit tests).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.codec import AvroSchema, fingerprint_hex
from schemas.errors import InvalidSchema


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """One record of the schemas topic: the fingerprint in hex and the schema's JSON.

    The JSON is the schema as written, not its canonical form: the canonical form drops
    logical types, and a reader that has only the writer's schema (data read as published)
    would read a timestamp as a number. Records written as canonical JSON still resolve."""

    key: str
    value: str


class SchemaStore(Protocol):
    """Where schemas persist. Implementations are used under the registry's lock."""

    def publish(self, key: str, value: str) -> None:
        """Write one schema durably; returns once it is acknowledged."""
        ...

    def read_new(self) -> Sequence[StoredSchema]:
        """Records up to the end offsets taken now, not returned before (the first call
        reads from the beginning)."""
        ...


class SchemaRegistry:
    """Writer schemas by fingerprint, in memory, backed by a `SchemaStore`. Thread-safe."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self._by_fingerprint: dict[bytes, AvroSchema] = {}
        self._lock = threading.Lock()

    def load(self) -> int:
        """Read the store to its end; call before reporting ready. Returns schemas known."""
        with self._lock:
            self._catch_up()
            return len(self._by_fingerprint)

    def register(self, schema: AvroSchema) -> None:
        """Make `schema` resolvable by every reader; publishes it unless already known."""
        if schema.fingerprint in self._by_fingerprint:
            return
        with self._lock:
            if schema.fingerprint in self._by_fingerprint:
                return
            self._store.publish(fingerprint_hex(schema.fingerprint), schema.as_json())
            self._by_fingerprint[schema.fingerprint] = schema

    def lookup(self, fingerprint: bytes) -> AvroSchema | None:
        """The schema with this fingerprint; on a miss, re-reads the store before giving up."""
        found = self._by_fingerprint.get(fingerprint)  # a dict read is atomic: no lock
        if found is not None:
            return found
        with self._lock:
            found = self._by_fingerprint.get(fingerprint)
            if found is None:
                self._catch_up()
                found = self._by_fingerprint.get(fingerprint)
            return found

    def known(self) -> tuple[AvroSchema, ...]:
        return tuple(self._by_fingerprint.values())

    def _catch_up(self) -> None:
        for stored in self._store.read_new():
            try:
                schema = AvroSchema.from_json(stored.value)
            except InvalidSchema:
                continue  # a record no schema parser accepts can never resolve a value
            if schema.fingerprint_hex == stored.key:
                self._by_fingerprint.setdefault(schema.fingerprint, schema)
