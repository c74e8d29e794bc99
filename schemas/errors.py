"""Errors of the schemas package, split by what the caller should do.

SchemaError  (a core.errors.HooklineError, as every package's root is)
 ├── UndecodableRecord       bytes that cannot be read: dead-letter them with their coordinates
 │    └── UnknownWriterSchema    the writer schema's fingerprint is not in the registry
 ├── InvalidSchema           a schema definition fastavro refuses
 ├── UnencodableValue        a value does not fit the schema it is written with: a bug
 ├── UnknownEventType        an event type the catalog does not hold: reject the request
 ├── InvalidEventData        an event's data breaks its type's schema: reject, naming the field
 ├── EventTypeExists         a new event type's name is taken: evolve it with a new version
 ├── IncompatibleSchema      a new version cannot read an earlier version's data: refuse it
 └── SchemaStoreError        the log-backed schema store could not be read or written
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from core.errors import HooklineError
from core.undecodable import UndecodableReason


class SchemaError(HooklineError):
    """Root of the schema errors; its message is one line fit to log or show."""


class UndecodableRecord(SchemaError):
    """A record value that cannot be decoded.

    The codec does not know where the bytes came from; the consumer that read them adds the
    coordinates with `at(topic, partition, offset)` before dead-lettering.
    """

    dead_letter_reason: ClassVar[UndecodableReason] = "undecodable"

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def __str__(self) -> str:
        where = "" if self.topic is None else f" at {self.topic}[{self.partition}]@{self.offset}"
        return f"undecodable record{where}: {self.reason}"

    def at(self, topic: str, partition: int, offset: int) -> Self:
        """This error, now naming where the record was read from (kept as its own type)."""
        self.topic, self.partition, self.offset = topic, partition, offset
        return self


class UnknownWriterSchema(UndecodableRecord):
    """The writer schema's fingerprint was found neither in memory nor on the schemas topic."""

    dead_letter_reason: ClassVar[UndecodableReason] = "unknown schema"

    def __init__(self, fingerprint: bytes) -> None:
        super().__init__(f"unknown writer schema {fingerprint.hex()}")
        self.fingerprint = fingerprint


class InvalidSchema(SchemaError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid Avro schema: {reason}")
        self.reason = reason


class UnencodableValue(SchemaError):
    def __init__(self, schema_name: str, reason: str) -> None:
        super().__init__(f"cannot encode {schema_name}: {reason}")
        self.schema_name = schema_name
        self.reason = reason


class UnknownEventType(SchemaError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class InvalidEventData(SchemaError):
    """An event's data does not match its type's schema; `field` is the path of the culprit."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        super().__init__(f"{event_type}: {field}: {reason}")
        self.event_type = event_type
        self.field = field
        self.reason = reason


class EventTypeExists(SchemaError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"event type {event_type!r} exists; add a version to change it")
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason data written with one schema cannot be read with another."""

    path: str
    """Dotted field path from the record root ("customer.address.zip"); "" for the root."""
    reason: str
    """One plain sentence, e.g. "field 'currency' was added without a default"."""


class IncompatibleSchema(SchemaError):
    """A new version's schema cannot read data written with an earlier version; each
    problem names the field (`path`, dotted; "" is the record itself) and why."""

    def __init__(self, event_type: str, problems: Sequence[Incompatibility]) -> None:
        first = problems[0]
        where = first.path or "the record"
        super().__init__(f"{event_type}: not backward compatible: {where}: {first.reason}")
        self.event_type = event_type
        self.problems = tuple(problems)


class SchemaStoreError(SchemaError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"schema store {topic}: {reason}")
        self.topic = topic
        self.reason = reason
