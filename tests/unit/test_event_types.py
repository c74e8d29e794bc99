"""Unit tests of the event-type registry's pure parts: the name rule, registering and evolving
a type (schema, examples, compatibility), which record wins, the catalog fold, the record's
Avro round trip and what `hookline event-types push` decides for a file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest

from core.errors import InvalidField
from core.event_types import (
    EventTypeRecord,
    EventTypeVersion,
    check_event_type_name,
    newest_revision,
)
from hookline.app.event_types import Definition, PushRefused, plan
from schemas.catalog import (
    EventCatalog,
    builtin_record,
    catalog_of,
    load_catalog,
    load_record_schemas,
)
from schemas.codec import AvroSchema
from schemas.errors import EventTypeExists, IncompatibleSchema, UnknownEventType
from schemas.event_types import check_examples, new_type, next_version, parse_data_schema
from schemas.records_avro import RecordCodec

T0: Final = datetime(2026, 1, 1, tzinfo=UTC)
PAID: Final[dict[str, Any]] = {
    "type": "record",
    "name": "InvoicePaid",
    "doc": "An invoice was paid.",
    "fields": [
        {"name": "invoice_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
    ],
}
EXAMPLE: Final[dict[str, Any]] = {"invoice_id": "i-1", "amount_cents": 100}


def _with(*fields: dict[str, Any]) -> dict[str, Any]:
    return {**PAID, "fields": [*PAID["fields"], *fields]}


def _paid(**changes: Any) -> EventTypeRecord:
    body: dict[str, Any] = {"schema": PAID, "examples": [EXAMPLE]} | changes
    record, _ = new_type(load_catalog(), name="invoice.paid", description="Paid.", now=T0, **body)
    return record


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["invoice.paid", "a1.b_2", "order.line_item.added"])
def test_a_noun_verb_name_is_accepted(name: str) -> None:
    assert check_event_type_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["invoice", "Invoice.paid", "invoice.", ".paid", "1nvoice.paid", "invoice.paid!", "a..b"],
)
def test_a_name_that_is_not_noun_verb_is_refused_naming_name(name: str) -> None:
    with pytest.raises(InvalidField) as caught:
        check_event_type_name(name)
    assert caught.value.field == "name"


def test_the_platform_types_are_reserved() -> None:
    with pytest.raises(InvalidField, match="platform's own"):
        check_event_type_name("webhook.custom")


# -- schema and examples --------------------------------------------------------------------


def test_a_schema_that_is_not_a_record_is_refused_naming_schema() -> None:
    for definition in ("string", {"type": "enum", "name": "E", "symbols": ["A"]}, [PAID]):
        with pytest.raises(InvalidField) as caught:
            parse_data_schema(definition)
        assert caught.value.field == "schema"


def test_fastavros_reason_is_given_for_a_schema_it_refuses() -> None:
    with pytest.raises(InvalidField) as caught:
        parse_data_schema(_with({"name": "x", "type": "strin"}))
    assert caught.value.field == "schema"
    assert "strin" in caught.value.reason


def test_an_example_that_breaks_the_schema_is_named_by_place_and_field() -> None:
    schema = AvroSchema.parse(PAID)
    assert check_examples(schema, [EXAMPLE], event_type="invoice.paid") == (EXAMPLE,)
    assert check_examples(schema, None, event_type="invoice.paid") == ()
    with pytest.raises(InvalidField) as caught:
        check_examples(schema, [EXAMPLE, {**EXAMPLE, "amount_cents": "x"}], event_type="i.p")
    assert caught.value.field == "examples[1].amount_cents"
    with pytest.raises(InvalidField) as caught:
        check_examples(schema, [3], event_type="i.p")
    assert caught.value.field == "examples[0]"


# -- registering and evolving ---------------------------------------------------------------


def test_a_new_type_is_version_1_and_a_taken_name_is_refused() -> None:
    record = _paid()
    assert (record.latest.version, record.revision, record.builtin) == (1, 1, False)
    assert json.loads(record.latest.schema) == PAID
    with pytest.raises(EventTypeExists):
        new_type(
            load_catalog(), name="task.created", description="", schema=PAID, examples=None, now=T0
        )


def test_a_compatible_version_is_the_next_revision() -> None:
    optional = {"name": "note", "type": ["null", "string"], "default": None}
    later = T0 + timedelta(hours=1)
    record, schema = next_version(
        _paid(), schema=_with(optional), description="Paid, with a note.", examples=None, now=later
    )
    assert [v.version for v in record.versions] == [1, 2]
    assert (record.revision, record.description, record.updated_at) == (
        2,
        "Paid, with a note.",
        later,
    )
    assert record.versions[0].description == "Paid."
    assert schema == AvroSchema.parse(_with(optional))


def test_an_incompatible_version_names_the_field() -> None:
    with pytest.raises(IncompatibleSchema) as caught:
        next_version(
            _paid(),
            schema=_with({"name": "payer", "type": "string"}),
            description=None,
            examples=None,
            now=T0,
        )
    assert [p.path for p in caught.value.problems] == ["payer"]


def test_a_change_of_description_or_deprecation_is_the_next_revision() -> None:
    record = _paid().changed(description=None, deprecated=True, now=T0)
    assert (record.revision, record.deprecated, record.description) == (2, True, "Paid.")


def test_an_older_revision_never_replaces_a_newer_one() -> None:
    first = _paid()
    second = first.changed(description="Newer.", deprecated=None, now=T0)
    assert newest_revision(second, first) is second
    assert newest_revision(first, second) is second
    assert newest_revision(None, first) is first


# -- the catalog fold -----------------------------------------------------------------------


def test_the_fold_puts_topic_records_over_the_shipped_types() -> None:
    shipped = load_catalog()
    task: dict[str, Any] = json.loads(json.dumps(shipped.types["task.created"].avro))
    due = {"name": "due", "type": ["null", "string"], "default": None}
    evolved, _ = next_version(
        builtin_record(shipped.types["task.created"], now=T0),
        schema={**task, "fields": [*task["fields"], due]},
        description=None,
        examples=None,
        now=T0,
    )
    catalog = catalog_of([_paid(), evolved], defaults=shipped)
    assert set(catalog.names()) == {*shipped.names(), "invoice.paid"}
    assert catalog.types["task.created"].version == 2
    assert catalog.types["invoice.paid"].latest.examples == (EXAMPLE,)
    assert catalog_of([evolved, _paid()], defaults=shipped) == catalog


def test_the_built_ins_on_the_topic_fold_to_the_shipped_catalog() -> None:
    shipped = load_catalog()
    records = [builtin_record(e, now=T0) for e in shipped.entries()]
    folded = catalog_of(records, defaults=EventCatalog({}))
    assert folded.names() == shipped.names()
    for entry in shipped.entries():
        assert folded.types[entry.name].schema == entry.schema
        assert folded.types[entry.name].json_schema == entry.json_schema


def test_a_record_whose_schema_does_not_parse_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    version = EventTypeVersion(1, "{", "", (), T0)
    broken = EventTypeRecord("bad.type", "", (version,), False, False, T0, T0, 1)
    with caplog.at_level(logging.ERROR):
        catalog = catalog_of([broken, _paid()], defaults=EventCatalog({}))
    assert catalog.names() == ("invoice.paid",)
    assert "bad.type" in caplog.text


def test_an_event_type_record_round_trips_through_avro() -> None:
    codec = RecordCodec(
        records=load_record_schemas(),
        catalog=load_catalog(),
        writer_lookup=lambda _fingerprint: None,
    )
    record = next_version(_paid(), schema=PAID, description=None, examples=[EXAMPLE], now=T0)[0]
    assert codec.decode_event_type(codec.encode_event_type(record)) == record


# -- what push decides ----------------------------------------------------------------------


class _Catalog:
    """A fake of the live catalog: records by name over the shipped types."""

    def __init__(self, *records: EventTypeRecord) -> None:
        self.records = {r.name: r for r in records}

    def current(self) -> EventCatalog:
        return catalog_of(self.records.values(), defaults=load_catalog())

    def record(self, name: str) -> EventTypeRecord | None:
        found = self.records.get(name)
        shipped = load_catalog().types.get(name)
        if found is None and shipped is not None:
            return builtin_record(shipped, now=T0)
        return found


def test_push_creates_keeps_or_evolves() -> None:
    catalog = _Catalog(_paid())
    assert plan(catalog, Definition("invoice.paid", PAID, [EXAMPLE]), now=T0) == ("unchanged", None)
    line, record = plan(catalog, Definition("invoice.sent", PAID, None), now=T0)
    assert (line, record is not None) == ("created", True)
    optional = {"name": "note", "type": ["null", "string"], "default": None}
    line, _ = plan(catalog, Definition("invoice.paid", _with(optional), [EXAMPLE]), now=T0)
    assert line == "new version 2"
    shipped = load_catalog().types["task.created"].avro
    assert plan(catalog, Definition("task.created", shipped, None), now=T0)[0] == "unchanged"


def test_push_refuses_an_incompatible_file_in_one_line_naming_the_field() -> None:
    catalog = _Catalog(_paid())
    with pytest.raises(PushRefused) as caught:
        plan(
            catalog,
            Definition("invoice.paid", _with({"name": "payer", "type": "string"}), None),
            now=T0,
        )
    assert str(caught.value).startswith("invoice.paid.avsc: not backward compatible: field payer")


class _Lagging:
    """A catalog source a type reaches only once it is refreshed (a table a moment behind)."""

    def __init__(self, behind: EventCatalog, caught_up: EventCatalog) -> None:
        self._now, self._later = behind, caught_up
        self.refreshed = 0

    def current(self) -> EventCatalog:
        return self._now

    def refresh(self) -> EventCatalog:
        self.refreshed += 1
        self._now = self._later
        return self._now


def test_a_type_not_known_yet_is_looked_for_again_after_a_refresh() -> None:
    shipped = load_catalog()
    source = _Lagging(shipped, catalog_of([_paid()], defaults=shipped))
    codec = RecordCodec(
        records=load_record_schemas(), catalog=source, writer_lookup=lambda _fingerprint: None
    )
    assert codec.schema_of("invoice.paid") == AvroSchema.parse(PAID)
    assert codec.schema_of("invoice.paid") == AvroSchema.parse(PAID)
    assert source.refreshed == 1
    with pytest.raises(UnknownEventType):
        codec.schema_of("invoice.lost")
