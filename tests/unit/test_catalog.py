"""The event-type catalog and the record schemas, as read from the shipped `.avsc` files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.catalog import (
    describe,
    inline_named_types,
    load_catalog,
    load_record_schemas,
)
from schemas.codec import AvroSchema
from schemas.errors import UnknownEventType

SEED_TYPES = (
    "meeting.ended",
    "subscription.disabled",
    "task.assigned",
    "task.created",
    "webhook.ping",
)


def test_catalog_holds_the_shipped_types_by_file_name() -> None:
    catalog = load_catalog()
    assert catalog.names() == SEED_TYPES
    assert [entry.name for entry in catalog.entries()] == list(SEED_TYPES)
    assert "task.created" in catalog
    assert "task.deleted" not in catalog


def test_every_type_is_a_noun_verb_with_a_documented_record() -> None:
    for entry in load_catalog().entries():
        assert re.fullmatch(r"[a-z][a-z_]*\.[a-z][a-z_]*", entry.name)
        assert entry.doc
        assert isinstance(entry.avro, dict)
        assert entry.avro["type"] == "record"
        assert entry.schema.name.startswith("dev.hookline.events.")


def test_unknown_type_raises_a_typed_error() -> None:
    catalog = load_catalog()
    with pytest.raises(UnknownEventType) as caught:
        catalog.schema("task.deleted")
    assert caught.value.event_type == "task.deleted"
    assert catalog.get("task.deleted") is None


def test_fields_of_the_seed_types_are_those_of_the_design() -> None:
    catalog = load_catalog()
    fields = {
        name: [f["name"] for f in _fields(catalog.schema(name).definition)] for name in SEED_TYPES
    }
    assert fields == {
        "task.created": ["id", "title", "project_id", "assignee_id"],
        "task.assigned": ["id", "title", "assignee_id", "previous_assignee_id"],
        "meeting.ended": ["id", "title", "ended_at", "attendee_ids"],
        "webhook.ping": ["subscription_id"],
        "subscription.disabled": ["subscription_id", "reason"],
    }


def test_json_schema_describes_the_json_form() -> None:
    catalog = load_catalog()
    created = catalog.types["task.created"].json_schema
    assert created["type"] == "object"
    assert created["required"] == ["id", "title", "project_id"]
    assert created["additionalProperties"] is False
    properties = created["properties"]
    assert isinstance(properties, dict)
    assert properties["assignee_id"] == {
        "type": ["null", "string"],
        "description": "null when unassigned",
        "default": None,
    }
    ended = catalog.types["meeting.ended"].json_schema["properties"]
    assert isinstance(ended, dict)
    assert ended["ended_at"] == {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 in JSON",
    }
    assert ended["attendee_ids"] == {"type": "array", "items": {"type": "string"}}


def test_record_schemas_parse_with_distinct_fingerprints() -> None:
    records = load_record_schemas()
    names = [schema.name for schema in records.all()]
    assert names == [
        "dev.hookline.Event",
        "dev.hookline.Subscription",
        "dev.hookline.DeliveryCommand",
        "dev.hookline.DeliveryAttempt",
        "dev.hookline.DeadLetter",
        "dev.hookline.Job",
        "dev.hookline.ApiToken",
        "dev.hookline.EventType",
    ]
    assert len({schema.fingerprint for schema in records.all()}) == 8


def test_dead_letter_carries_the_one_delivery_command_definition() -> None:
    records = load_record_schemas()
    command_field = next(
        f for f in _fields(records.dead_letter.definition) if f["name"] == "command"
    )
    null, command = command_field["type"]
    assert null == "null"
    assert AvroSchema.parse(command) == records.delivery_command
    assert command_field["default"] is None


def test_every_optional_field_has_a_default() -> None:
    schemas = [*load_record_schemas().all(), *(e.schema for e in load_catalog().entries())]
    for schema in schemas:
        for record_name, field in _all_fields(schema.definition):
            if isinstance(field["type"], list) and "null" in field["type"]:
                assert "default" in field, f"{record_name}.{field['name']} has no default"
                assert field["type"][0] == "null", "a null default needs null first"


def test_inlining_keeps_later_references_as_names() -> None:
    shared = {"ns.Ref": {"type": "record", "name": "Ref", "namespace": "ns", "fields": []}}
    inlined = inline_named_types(
        {
            "type": "record",
            "name": "Pair",
            "namespace": "ns",
            "fields": [{"name": "a", "type": "ns.Ref"}, {"name": "b", "type": ["null", "ns.Ref"]}],
        },
        shared,
    )
    fields = _fields(inlined)
    assert fields[0]["type"] == shared["ns.Ref"]
    assert fields[1]["type"] == ["null", "ns.Ref"]
    AvroSchema.parse(inlined)


def test_describe_unions_of_records_use_any_of() -> None:
    described = describe(
        [
            "null",
            {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]},
        ]
    )
    assert described["anyOf"] == [
        {"type": "null"},
        {
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
            "additionalProperties": False,
        },
    ]


def _fields(definition: Any) -> list[dict[str, Any]]:
    assert isinstance(definition, dict)
    fields: list[dict[str, Any]] = definition["fields"]
    return fields


def _all_fields(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, list):
        for branch in node:
            yield from _all_fields(branch)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            for field in node["fields"]:
                yield node["name"], field
                yield from _all_fields(field["type"])
        for key in ("items", "values"):
            if key in node:
                yield from _all_fields(node[key])
