"""The single-object codec and the schema registry's rules, with an in-memory store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codec import (
    AvroSchema,
    decode,
    encode,
    fingerprint,
    fingerprint_hex,
    read_fingerprint,
)
from schemas.errors import (
    InvalidSchema,
    UndecodableRecord,
    UnencodableValue,
    UnknownWriterSchema,
)
from schemas.registry import SchemaRegistry, StoredSchema

V1: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "dev.hookline.test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},
    ],
}
V2: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "dev.hookline.test",
    "doc": "v2 adds a defaulted field",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "label", "type": ["null", "string"], "default": None},
        {"name": "weight", "type": "double", "default": 1.5},
    ],
}


class InMemorySchemaStore:
    """A `SchemaStore` fake: a list standing in for the compacted topic."""

    def __init__(self) -> None:
        self.log: list[StoredSchema] = []
        self.read_position = 0
        self.reads = 0
        self.publishes = 0

    def publish(self, key: str, value: str) -> None:
        self.publishes += 1
        self.log.append(StoredSchema(key, value))

    def read_new(self) -> Sequence[StoredSchema]:
        self.reads += 1
        new = self.log[self.read_position :]
        self.read_position = len(self.log)
        return new


def no_writers(_fp: bytes) -> AvroSchema | None:
    return None


# -- fingerprints: published values from the Avro spec's implementations -----------------


def test_fingerprint_of_int_is_the_published_crc64_avro() -> None:
    # Avro's Ruby test_fingerprints.rb and goavro's crc64avro_test.go: 0x7275d51a3f395c8f,
    # which single-object encoding writes little-endian.
    fp = fingerprint("int")
    assert int.from_bytes(fp, "little") == 0x7275D51A3F395C8F
    assert fingerprint_hex(fp) == "8f5c393f1ad57572"


def test_fingerprint_of_string_is_the_published_crc64_avro() -> None:
    assert int.from_bytes(fingerprint("string"), "little") == 0x8F014872634503C7


def test_header_of_int_matches_the_published_single_object_header() -> None:
    # test_single_object_encoding_header in Avro's Ruby tests
    expected = bytes([0xC3, 0x01, 0x8F, 0x5C, 0x39, 0x3F, 0x1A, 0xD5, 0x75, 0x72])
    assert AvroSchema.parse("int").header == expected
    assert encode(AvroSchema.parse("int"), 1)[:10] == expected


def test_fingerprint_ignores_what_the_canonical_form_strips() -> None:
    documented = {**V1, "doc": "words", "aliases": ["Other"]}
    assert fingerprint(documented) == fingerprint(V1)
    assert AvroSchema.parse(documented) == AvroSchema.parse(V1)
    assert fingerprint(V2) != fingerprint(V1)


def test_fingerprint_hex_refuses_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        fingerprint_hex(b"\x01\x02")


def test_invalid_schema_is_a_typed_error() -> None:
    with pytest.raises(InvalidSchema):
        AvroSchema.parse({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(InvalidSchema):
        AvroSchema.from_json("{not json")


def test_from_json_of_canonical_form_has_the_same_fingerprint() -> None:
    schema = AvroSchema.parse(V2)
    assert AvroSchema.from_json(schema.canonical).fingerprint == schema.fingerprint


# -- encode / decode ------------------------------------------------------------------------


def test_round_trip_with_the_same_schema() -> None:
    schema = AvroSchema.parse(V1)
    data = encode(schema, {"id": "a", "count": 3})
    assert data[:2] == b"\xc3\x01"
    assert read_fingerprint(data) == schema.fingerprint
    assert decode(data, writer_lookup=no_writers, reader=schema) == {"id": "a", "count": 3}


def test_v1_writer_read_with_v2_reader_fills_the_defaults() -> None:
    v1, v2 = AvroSchema.parse(V1), AvroSchema.parse(V2)
    data = encode(v1, {"id": "a", "count": 3})
    lookup = {v1.fingerprint: v1}.get
    assert decode(data, writer_lookup=lookup, reader=v2) == {
        "id": "a",
        "count": 3,
        "label": None,
        "weight": 1.5,
    }


def test_v2_writer_read_with_v1_reader_drops_the_new_fields() -> None:
    v1, v2 = AvroSchema.parse(V1), AvroSchema.parse(V2)
    data = encode(v2, {"id": "a", "count": 3, "label": "x", "weight": 2.0})
    lookup = {v2.fingerprint: v2}.get
    assert decode(data, writer_lookup=lookup, reader=v1) == {"id": "a", "count": 3}


def test_bad_magic_is_undecodable() -> None:
    schema = AvroSchema.parse(V1)
    data = b"\x00\x01" + encode(schema, {"id": "a", "count": 3})[2:]
    with pytest.raises(UndecodableRecord, match="bad magic"):
        decode(data, writer_lookup=no_writers, reader=schema)


def test_value_shorter_than_the_header_is_undecodable() -> None:
    with pytest.raises(UndecodableRecord, match="header"):
        decode(b"\xc3\x01\x00", writer_lookup=no_writers, reader=AvroSchema.parse(V1))


def test_unknown_fingerprint_raises_unknown_writer_schema() -> None:
    data = b"\xc3\x01" + bytes(8) + b"\x02a\x06"
    with pytest.raises(UnknownWriterSchema) as caught:
        decode(data, writer_lookup=no_writers, reader=AvroSchema.parse(V1))
    assert caught.value.fingerprint == bytes(8)
    assert isinstance(caught.value, UndecodableRecord)


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_truncated_body_is_undecodable(cut: int) -> None:
    schema = AvroSchema.parse(V1)
    data = encode(schema, {"id": "abc", "count": 300})
    with pytest.raises(UndecodableRecord):
        decode(data[:-cut], writer_lookup=no_writers, reader=schema)


def test_trailing_bytes_are_undecodable() -> None:
    schema = AvroSchema.parse(V1)
    data = encode(schema, {"id": "a", "count": 3}) + b"\x00"
    with pytest.raises(UndecodableRecord, match="trailing"):
        decode(data, writer_lookup=no_writers, reader=schema)


def test_unresolvable_schemas_are_undecodable() -> None:
    writer = AvroSchema.parse(V1)
    reader = AvroSchema.parse({**V1, "fields": [{"name": "id", "type": "long"}]})
    data = encode(writer, {"id": "a", "count": 3})
    with pytest.raises(UndecodableRecord):
        decode(data, writer_lookup={writer.fingerprint: writer}.get, reader=reader)


def test_undecodable_record_names_its_coordinates() -> None:
    error = UndecodableRecord("bad magic 0000").at("hookline.events", 3, 42)
    assert (error.topic, error.partition, error.offset) == ("hookline.events", 3, 42)
    assert str(error) == "undecodable record at hookline.events[3]@42: bad magic 0000"
    unknown = UnknownWriterSchema(bytes(8)).at("hookline.deliveries", 0, 7)
    assert isinstance(unknown, UnknownWriterSchema)
    assert "hookline.deliveries[0]@7" in str(unknown)


def test_value_that_does_not_fit_the_schema_is_unencodable() -> None:
    with pytest.raises(UnencodableValue, match=r"dev\.hookline\.test\.Thing"):
        encode(AvroSchema.parse(V1), {"id": "a", "count": "three"})


# -- the registry ---------------------------------------------------------------------------


def test_register_publishes_once_per_fingerprint() -> None:
    store = InMemorySchemaStore()
    registry = SchemaRegistry(store)
    schema = AvroSchema.parse(V1)
    registry.register(schema)
    registry.register(AvroSchema.parse({**V1, "doc": "same canonical form"}))
    assert store.publishes == 1
    assert store.log[0] == StoredSchema(schema.fingerprint_hex, schema.as_json())
    assert registry.lookup(schema.fingerprint) == schema


def test_a_fresh_registry_resolves_an_unseen_writer_from_the_store() -> None:
    store = InMemorySchemaStore()
    writer_side = SchemaRegistry(store)
    reader_side = SchemaRegistry(store)
    assert reader_side.load() == 0
    v1, v2 = AvroSchema.parse(V1), AvroSchema.parse(V2)
    writer_side.register(v1)  # after the reader loaded: only a re-read can find it
    data = encode(v1, {"id": "a", "count": 3})
    value = decode(data, writer_lookup=reader_side.lookup, reader=v2)
    assert value["weight"] == 1.5


def test_a_resolved_writer_keeps_its_logical_types() -> None:
    """Regression: the store held the canonical form, which drops logical types, so data
    read with the writer's schema alone had its timestamps as numbers."""
    store = InMemorySchemaStore()
    timed = {
        **V1,
        "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    written = AvroSchema.parse(timed)
    SchemaRegistry(store).register(written)
    found = SchemaRegistry(store).lookup(written.fingerprint)
    assert found is not None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    data = encode(written, {"at": at})
    assert decode(data, writer_lookup=lambda _fp: None, reader=found) == {"at": at}


def test_lookup_of_an_unknown_fingerprint_re_reads_then_gives_up() -> None:
    store = InMemorySchemaStore()
    registry = SchemaRegistry(store)
    assert registry.lookup(bytes(8)) is None
    assert store.reads == 1


def test_load_skips_records_that_are_not_their_fingerprint() -> None:
    store = InMemorySchemaStore()
    schema = AvroSchema.parse(V1)
    store.log.append(StoredSchema("0000000000000000", schema.canonical))
    store.log.append(StoredSchema("ffffffffffffffff", "not json"))
    store.log.append(StoredSchema(schema.fingerprint_hex, schema.canonical))
    registry = SchemaRegistry(store)
    assert registry.load() == 1
    assert registry.known() == (schema,)


def test_concurrent_misses_re_read_the_store_once() -> None:
    store = InMemorySchemaStore()
    schema = AvroSchema.parse(V1)
    store.log.append(StoredSchema(schema.fingerprint_hex, schema.canonical))
    registry = SchemaRegistry(store)
    start = threading.Barrier(8)
    found: list[AvroSchema | None] = []

    def look() -> None:
        start.wait()
        found.append(registry.lookup(schema.fingerprint))

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [schema] * 8
    assert store.reads == 1
