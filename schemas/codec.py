"""Avro single-object encoding: `C3 01`, the writer schema's fingerprint, then the body.

The fingerprint is the 8-byte little-endian CRC-64-AVRO (Rabin) of the schema's Parsing
Canonical Form. Readers look the writer schema up by fingerprint and read with their own
schema, so records written with older (or newer) schemas resolve by Avro's rules.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, TypeAlias

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException, UnknownType, to_parsing_canonical_form
from fastavro.schema import fingerprint as _fastavro_fingerprint

from schemas.errors import (
    InvalidSchema,
    UndecodableRecord,
    UnencodableValue,
    UnknownWriterSchema,
)

SchemaDefinition: TypeAlias = str | list[Any] | dict[str, Any]
"""An Avro schema as JSON (what an `.avsc` file holds)."""

AvroRecord: TypeAlias = dict[str, Any]
"""A record as fastavro reads and writes it; never leaves the schemas package."""

MAGIC = b"\xc3\x01"
FINGERPRINT_LEN = 8
HEADER_LEN = len(MAGIC) + FINGERPRINT_LEN

# What fastavro raises on bytes that do not match the schema: short reads, bad varints,
# invalid UTF-8, out-of-range union indexes, schema-resolution failures.
_READ_ERRORS = (
    SchemaResolutionError,
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    OverflowError,
)
_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


@dataclass(frozen=True, slots=True, eq=False)
class AvroSchema:
    """A parsed schema with its canonical form, fingerprint and header precomputed.

    Two schemas are equal when their fingerprints are: doc strings, defaults and other
    attributes outside the canonical form do not change the identity of the writer.
    """

    definition: SchemaDefinition
    parsed: SchemaDefinition
    canonical: str
    fingerprint: bytes
    header: bytes
    name: str

    @classmethod
    def parse(cls, definition: SchemaDefinition) -> AvroSchema:
        """Parse a schema given as JSON (an `.avsc` file's content, or a primitive name)."""
        definition = copy.deepcopy(definition)
        try:
            parsed: SchemaDefinition = parse_schema(copy.deepcopy(definition))
            canonical = to_parsing_canonical_form(parsed)
        except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
            raise InvalidSchema(str(exc)) from exc
        fp = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
        return cls(definition, parsed, canonical, fp, MAGIC + fp, _name_of(parsed))

    @classmethod
    def from_json(cls, text: str | bytes) -> AvroSchema:
        """Parse a schema from its JSON text (as stored on the schemas topic)."""
        try:
            definition = json.loads(text)
        except ValueError as exc:
            raise InvalidSchema(f"not JSON: {exc}") from exc
        if not isinstance(definition, str | list | dict):
            raise InvalidSchema(f"not a schema: {definition!r}")
        return cls.parse(definition)

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def as_json(self) -> str:
        """The schema as written (docs and logical types kept), as compact JSON text."""
        return json.dumps(self.definition, separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AvroSchema):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"AvroSchema({self.name}, {self.fingerprint_hex})"


WriterLookup: TypeAlias = Callable[[bytes], AvroSchema | None]
"""Finds a writer schema by its 8-byte fingerprint; None when it is unknown."""


def _name_of(parsed: SchemaDefinition) -> str:
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, list):
        return "union"
    return str(parsed.get("name", parsed.get("type", "?")))


def fingerprint(definition: SchemaDefinition) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema's canonical form."""
    return AvroSchema.parse(definition).fingerprint


def fingerprint_hex(fp: bytes) -> str:
    """The fingerprint as the schemas topic keys it: 16 lowercase hex digits, byte order kept."""
    if len(fp) != FINGERPRINT_LEN:
        raise ValueError(f"a fingerprint has {FINGERPRINT_LEN} bytes, got {len(fp)}")
    return fp.hex()


def encode(schema: AvroSchema, value: object) -> bytes:
    """`value` in single-object encoding with `schema` as the writer schema."""
    out = BytesIO()
    out.write(schema.header)
    try:
        schemaless_writer(out, schema.parsed, value)
    except _WRITE_ERRORS as exc:
        raise UnencodableValue(schema.name, f"{type(exc).__name__}: {exc}") from exc
    return out.getvalue()


def read_fingerprint(data: bytes) -> bytes:
    """The writer fingerprint in a single-object encoded value; checks the magic bytes."""
    if len(data) < HEADER_LEN:
        raise UndecodableRecord(f"{len(data)} bytes is shorter than the {HEADER_LEN}-byte header")
    if data[:2] != MAGIC:
        raise UndecodableRecord(f"bad magic {data[:2].hex()}, expected {MAGIC.hex()}")
    return data[2:HEADER_LEN]


def decode(data: bytes, *, writer_lookup: WriterLookup, reader: AvroSchema) -> AvroRecord:
    """Read a single-object encoded record written with any known schema, as `reader` sees it.

    Raises `UndecodableRecord` (or its `UnknownWriterSchema`) for anything that cannot be
    read: bad header, unknown writer, truncated or trailing bytes, unresolvable schemas.
    """
    fp = read_fingerprint(data)
    if fp == reader.fingerprint:
        writer, reader_parsed = reader, None
    else:
        found = writer_lookup(fp)
        if found is None:
            raise UnknownWriterSchema(fp)
        writer, reader_parsed = found, reader.parsed
    body = BytesIO(data)
    body.seek(HEADER_LEN)
    try:
        value = schemaless_reader(body, writer.parsed, reader_parsed)
    except _READ_ERRORS as exc:
        raise UndecodableRecord(f"{writer.name}: {type(exc).__name__}: {exc}") from exc
    if body.tell() != len(data):
        raise UndecodableRecord(f"{writer.name}: {len(data) - body.tell()} trailing bytes")
    if not isinstance(value, dict):
        raise UndecodableRecord(f"{writer.name}: not a record")
    return value
