"""Registering an event type: a `data` schema fastavro accepts as a record, examples that
fit it, and a new version that can read every earlier version's data.

The API and `hookline event-types push` both decide with `new_type` and `next_version`; a
rule broken raises `core.errors.InvalidField` naming the part of the request at fault
(`schema`, `examples[1].amount`), `EventTypeExists`, or `IncompatibleSchema` with every
field that breaks reading earlier data.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final

from core.errors import InvalidField
from core.event_types import (
    MAX_EXAMPLES,
    EventTypeRecord,
    check_event_type_name,
    new_event_type,
)
from core.json_value import JsonValue
from schemas.catalog import EventCatalog, EventType, describe, event_type_of
from schemas.codec import AvroSchema
from schemas.compatibility import backward_incompatibilities
from schemas.errors import (
    EventTypeExists,
    Incompatibility,
    IncompatibleSchema,
    InvalidEventData,
    InvalidSchema,
)
from schemas.event_data import validate

SCHEMA_FIELD: Final = "schema"
EXAMPLES_FIELD: Final = "examples"


def parse_data_schema(definition: object, *, field: str = SCHEMA_FIELD) -> AvroSchema:
    """The Avro schema of an event's `data`: a record fastavro parses, whose values have a
    JSON form (`describe`), else `InvalidField` with fastavro's reason."""
    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise InvalidField(field, 'expected an Avro record schema: {"type": "record", ...}')
    if not isinstance(definition.get("fields"), list):
        raise InvalidField(field, "a record schema needs a `fields` array")
    try:
        schema = AvroSchema.parse(definition)
    except InvalidSchema as exc:
        raise InvalidField(field, exc.reason) from None
    try:
        describe(schema.definition)
    except InvalidSchema as exc:
        raise InvalidField(field, exc.reason) from None
    except (KeyError, TypeError, AttributeError) as exc:  # fastavro lets a few shapes pass
        raise InvalidField(field, f"a type cannot be read: {exc!r}") from None
    return schema


def check_examples(
    schema: AvroSchema, examples: object, *, event_type: str, field: str = EXAMPLES_FIELD
) -> tuple[dict[str, JsonValue], ...]:
    """Examples of `data`, each checked against `schema`; the first misfit is named by its
    place and field (`examples[1].amount`). None (not given) is none."""
    if examples is None:
        return ()
    if not isinstance(examples, list):
        raise InvalidField(field, "expected an array of example data objects")
    if len(examples) > MAX_EXAMPLES:
        raise InvalidField(field, f"at most {MAX_EXAMPLES} examples")
    checked: list[dict[str, JsonValue]] = []
    for index, example in enumerate(examples):
        where = f"{field}[{index}]"
        if not isinstance(example, dict):
            raise InvalidField(where, "expected an object")
        try:
            validate(schema, example, event_type=event_type)
        except InvalidEventData as exc:
            at = where if exc.field == "data" else f"{where}.{exc.field}"
            raise InvalidField(at, exc.reason) from None
        checked.append(example)
    return tuple(checked)


def evolution_problems(entry: EventType, schema: AvroSchema) -> list[Incompatibility]:
    """Why `schema` cannot be the next version of `entry`: data written with any earlier
    version must stay readable with it (Avro's schema resolution)."""
    earlier = [v.schema.definition for v in entry.versions]
    return backward_incompatibilities(schema.definition, earlier)


def new_type(
    catalog: EventCatalog,
    *,
    name: str,
    description: str,
    schema: object,
    examples: object,
    now: datetime,
) -> tuple[EventTypeRecord, AvroSchema]:
    """Version 1 of a new type and its parsed schema; `EventTypeExists` when the name is
    taken (a deprecated type included: its name stays its own)."""
    check_event_type_name(name)
    parsed = parse_data_schema(schema)
    checked = check_examples(parsed, examples, event_type=name)
    if name in catalog:
        raise EventTypeExists(name)
    record = new_event_type(
        name, description=description, schema=json.dumps(schema), examples=checked, now=now
    )
    return record, parsed


def next_version(
    current: EventTypeRecord,
    *,
    schema: object,
    description: str | None,
    examples: object,
    now: datetime,
) -> tuple[EventTypeRecord, AvroSchema]:
    """The type with one more version and that version's parsed schema;
    `IncompatibleSchema` naming each field that breaks reading earlier data."""
    parsed = parse_data_schema(schema)
    checked = check_examples(parsed, examples, event_type=current.name)
    problems = evolution_problems(event_type_of(current), parsed)
    if problems:
        raise IncompatibleSchema(current.name, problems)
    record = current.with_version(
        json.dumps(schema), description=description, examples=checked, now=now
    )
    return record, parsed
