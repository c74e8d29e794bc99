"""Every record survives Avro and back; event data is validated field by field."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import pytest

from core.records import (
    DeadLetter,
    DeliveryAttempt,
    DeliveryCommand,
    DomainEvent,
    Job,
    Ref,
    StoredSecret,
    Subscription,
    Timings,
    utc_ms,
)
from schemas.catalog import (
    EventCatalog,
    SchemaVersion,
    describe,
    load_catalog,
    load_record_schemas,
)
from schemas.codec import AvroSchema, decode, encode, read_fingerprint
from schemas.errors import InvalidEventData, UndecodableRecord, UnknownEventType
from schemas.event_data import format_rfc3339, parse_rfc3339, to_json, validate
from schemas.records_avro import (
    RecordCodec,
    attempt_to_avro,
    command_to_avro,
    subscription_to_avro,
)
from tests.factories import subscription

T0 = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
EVENT_ID = "5d1e6c3a-6f1b-4a57-9d3e-0d8f3b0f4a11"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "task.created": {"id": "t1", "title": "Write", "project_id": "p1", "assignee_id": None},
    "task.assigned": {
        "id": "t1",
        "title": "Write",
        "assignee_id": "u2",
        "previous_assignee_id": "u1",
    },
    "meeting.ended": {
        "id": "m1",
        "title": "Standup",
        "ended_at": "2025-03-04T05:06:07.890Z",
        "attendee_ids": ["u1", "u2"],
    },
    "webhook.ping": {"subscription_id": "s1"},
    "subscription.disabled": {"subscription_id": "s1", "reason": "410 Gone"},
}


def make_codec(catalog: EventCatalog | None = None) -> RecordCodec:
    """A codec whose writer lookup knows everything this process writes."""
    full = RecordCodec(records=load_record_schemas(), catalog=load_catalog(), writer_lookup=_none)
    known = {schema.fingerprint: schema for schema in full.writer_schemas()}
    return RecordCodec(
        records=full.records, catalog=catalog or full.catalog, writer_lookup=known.get
    )


def _none(_fp: bytes) -> AvroSchema | None:
    return None


def event(event_type: str, data: dict[str, Any], **overrides: Any) -> DomainEvent:
    fields: dict[str, Any] = {
        "id": EVENT_ID,
        "type": event_type,
        "tenant": "acme",
        "occurred_at": T0,
        "subject": Ref("task", "t1"),
        "actor": Ref("user", "u1"),
        "data": data,
        "changes": None,
        "trace": None,
    }
    fields.update(overrides)
    return DomainEvent(**fields)


def command(**overrides: Any) -> DeliveryCommand:
    fields: dict[str, Any] = {
        "delivery_id": "d1",
        "event_id": EVENT_ID,
        "event_type": "task.created",
        "tenant": "acme",
        "subscription_id": "s1",
        "occurred_at": T0,
        "payload": b'{"type":"task.created"}',
        "attempt": 0,
        "created_at": T0,
        "not_before": None,
        "origin": "route",
        "job_id": None,
        "last_error": None,
    }
    fields.update(overrides)
    return DeliveryCommand(**fields)


def full_subscription(**overrides: Any) -> Subscription:
    """A subscription with every field away from its default, so a round trip shows each."""
    fields: dict[str, Any] = {
        "filter": {"project_id": "p1", "n": 3, "x": 1.5, "flag": True, "none": None},
        "description": "ops",
        "headers": {"x-team": "ops"},
        "rate_limit": 2.5,
        "ordered": True,
        "updated_at": T0 + timedelta(seconds=1),
        "version": 4,
        "secrets": (
            StoredSecret(b"\x00" * 12 + b"cipher", None),
            StoredSecret(b"\x01" * 12 + b"old", T0 + timedelta(hours=24)),
        ),
    }
    return subscription("s1", "task.*", "meeting.ended", at=T0, **fields | overrides)


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(SAMPLE_DATA))
def test_every_event_type_round_trips(event_type: str) -> None:
    codec = make_codec()
    original = event(event_type, SAMPLE_DATA[event_type])
    assert codec.decode_event(codec.encode_event(original)) == original


def test_event_with_changes_trace_and_no_actor_round_trips() -> None:
    codec = make_codec()
    original = event(
        "task.assigned",
        SAMPLE_DATA["task.assigned"],
        actor=None,
        changes={"assignee_id": {"from": "u1", "to": "u2"}, "n": [1, 2.5, None, True]},
        trace=TRACEPARENT,
        tracestate="vendor=1,other=x",
    )
    assert codec.decode_event(codec.encode_event(original)) == original


def test_event_time_is_kept_to_the_millisecond_in_utc() -> None:
    codec = make_codec()
    local = datetime(2025, 3, 4, 7, 6, 7, 890_123, tzinfo=timezone(timedelta(hours=2)))
    decoded = codec.decode_event(
        codec.encode_event(event("webhook.ping", {"subscription_id": "s1"}, occurred_at=local))
    )
    assert decoded.occurred_at == T0
    assert decoded.occurred_at.tzinfo is not None


def test_meeting_end_time_reads_back_as_rfc3339_utc() -> None:
    codec = make_codec()
    data = {**SAMPLE_DATA["meeting.ended"], "ended_at": "2025-03-04T07:06:07.890123+02:00"}
    decoded = codec.decode_event(codec.encode_event(event("meeting.ended", data)))
    assert decoded.data["ended_at"] == "2025-03-04T05:06:07.890Z"
    as_datetime = {**data, "ended_at": T0}
    decoded = codec.decode_event(codec.encode_event(event("meeting.ended", as_datetime)))
    assert decoded.data["ended_at"] == "2025-03-04T05:06:07.890Z"


def test_omitted_optional_data_fields_take_their_defaults() -> None:
    codec = make_codec()
    data = {"id": "t1", "title": "Write", "project_id": "p1"}
    decoded = codec.decode_event(codec.encode_event(event("task.created", data)))
    assert decoded.data == {**data, "assignee_id": None}


def test_subscription_round_trips() -> None:
    codec = make_codec()
    for original in (
        full_subscription(),
        full_subscription(filter={}, headers={}, rate_limit=None),
        full_subscription(content_type="application/x-www-form-urlencoded"),
    ):
        assert codec.decode_subscription(codec.encode_subscription(original)) == original


def test_subscription_filter_keeps_each_value_type() -> None:
    codec = make_codec()
    decoded = codec.decode_subscription(codec.encode_subscription(full_subscription()))
    values = decoded.filter.document.values()
    assert [type(v) for v in values] == [str, int, float, bool, type(None)]


def test_delivery_command_round_trips() -> None:
    codec = make_codec()
    for original in (
        command(),
        command(attempt=3, not_before=T0 + timedelta(minutes=5), origin="replay", job_id="j1"),
        command(last_error="HTTP 503", origin="test"),
        command(trace=TRACEPARENT, tracestate="vendor=1"),
        command(origin="redeliver", prior_attempts=3),
    ):
        assert codec.decode_delivery_command(codec.encode_delivery_command(original)) == original


def test_delivery_attempt_round_trips() -> None:
    codec = make_codec()
    ids: dict[str, Any] = {"delivery_id": "d1", "event_id": EVENT_ID, "event_type": "task.created"}
    for original in (
        DeliveryAttempt(
            **ids, subscription_id="s1", tenant="acme", attempt=1, at=T0, status_code=200,
            duration_ms=12, error=None, response_excerpt="ok", outcome="delivered",
            next_attempt_at=None,
        ),
        DeliveryAttempt(
            **ids, subscription_id="s1", tenant="acme", attempt=2, at=T0, status_code=None,
            duration_ms=15000, error="timeout", response_excerpt=None, outcome="retrying",
            next_attempt_at=T0 + timedelta(minutes=5), trace=TRACEPARENT, tracestate="vendor=1",
        ),
        DeliveryAttempt(
            **ids, subscription_id="s1", tenant="acme", attempt=4, at=T0, status_code=202,
            duration_ms=9, error=None, response_excerpt="ok", outcome="delivered",
            next_attempt_at=None, origin="redeliver",
            request_headers={"webhook-signature": "v1,<redacted>", "host": "127.0.0.1:80"},
            request_body='{"type":"task.created"}', response_headers={"server": "x"},
            timings=Timings(dns_ms=None, connect_ms=1, ttfb_ms=7),
        ),
    ):  # fmt: skip
        assert codec.decode_delivery_attempt(codec.encode_delivery_attempt(original)) == original


def test_dead_letter_round_trips_with_a_command_or_raw_bytes() -> None:
    codec = make_codec()
    exhausted = DeadLetter(
        id="dl1", reason="exhausted", at=T0, subscription_id="s1", command=command(attempt=8),
        source_topic="hookline.retry.10h", source_partition=2, source_offset=77, raw_value=None,
        error="503",
    )  # fmt: skip
    undecodable = DeadLetter(
        id="dl2", reason="undecodable", at=T0, subscription_id=None, command=None,
        source_topic="hookline.events", source_partition=0, source_offset=5,
        raw_value=b"\x00garbage", error="bad magic",
    )  # fmt: skip
    for original in (exhausted, undecodable):
        assert codec.decode_dead_letter(codec.encode_dead_letter(original)) == original


def test_job_round_trips() -> None:
    codec = make_codec()
    for original in (
        Job(
            id="j1", kind="replay", tenant="acme", subscription_id="s1", since=T0,
            event_types=("task.*",), scanned=10, emitted=3, created_at=T0, updated_at=T0,
        ),
        Job(
            id="j2", kind="redeliver", tenant="acme", delivery_id="d1", status="failed",
            error="gone", created_at=T0, updated_at=T0 + timedelta(seconds=3),
        ),
    ):  # fmt: skip
        assert codec.decode_job(codec.encode_job(original)) == original


# -- evolution of an event type's data ------------------------------------------------------


def _task_created_v2() -> AvroSchema:
    v1 = load_catalog().schema("task.created").definition
    assert isinstance(v1, dict)
    extra = {"name": "priority", "type": "int", "default": 3}
    return AvroSchema.parse({**v1, "fields": [*v1["fields"], extra]})


def _catalog_with(event_type: str, schema: AvroSchema) -> EventCatalog:
    """The shipped catalog with `schema` as the next version of `event_type`."""
    base = load_catalog()
    entry = base.types[event_type]
    v2 = SchemaVersion(2, entry.doc, schema, describe(schema.definition))
    evolved = dataclasses.replace(entry, versions=(*entry.versions, v2))
    return EventCatalog({**base.types, event_type: evolved})


def _codec(catalog: EventCatalog, known: Sequence[AvroSchema]) -> RecordCodec:
    lookup = {s.fingerprint: s for s in known}.get
    return RecordCodec(records=make_codec().records, catalog=catalog, writer_lookup=lookup)


def test_data_is_read_as_published_whatever_version_the_reader_knows() -> None:
    """A router a moment behind a new version must not drop its new fields, and one ahead
    must not add fields the publisher never sent: the webhook carries the data as written."""
    v2 = _task_created_v2()
    old, new = load_catalog(), _catalog_with("task.created", v2)
    known = [*make_codec().writer_schemas(), v2]
    v1_data = SAMPLE_DATA["task.created"]
    v2_data = {**v1_data, "priority": 1}
    written_v1 = _codec(old, known).encode_event(event("task.created", v1_data))
    written_v2 = _codec(new, known).encode_event(event("task.created", v2_data))
    assert _codec(new, known).decode_event(written_v1).data == v1_data
    assert _codec(old, known).decode_event(written_v2).data == v2_data


def test_an_event_is_written_with_its_types_latest_version() -> None:
    v2 = _task_created_v2()
    codec = _codec(_catalog_with("task.created", v2), [v2])
    value = codec.encode_data("task.created", SAMPLE_DATA["task.created"])
    assert read_fingerprint(value) == v2.fingerprint
    assert codec.decode_data(value) == {**SAMPLE_DATA["task.created"], "priority": 3}


def test_data_of_a_type_the_reader_does_not_know_reads_with_the_writer_schema() -> None:
    writer = make_codec()
    base = load_catalog()
    without_ping = EventCatalog({k: v for k, v in base.types.items() if k != "webhook.ping"})
    reader = RecordCodec(
        records=writer.records,
        catalog=without_ping,
        writer_lookup={s.fingerprint: s for s in writer.writer_schemas()}.get,
    )
    original = event("webhook.ping", {"subscription_id": "s1"})
    assert reader.decode_event(writer.encode_event(original)) == original


# -- validation names the field -------------------------------------------------------------


def _invalid(event_type: str, data: dict[str, Any]) -> InvalidEventData:
    with pytest.raises(InvalidEventData) as caught:
        make_codec().validate_data(event_type, data)
    assert caught.value.event_type == event_type
    return caught.value


def test_missing_required_field_is_named() -> None:
    error = _invalid("task.created", {"id": "t1", "project_id": "p1"})
    assert (error.field, error.reason) == ("title", "required field is missing")


def test_wrong_type_inside_an_array_is_named_with_its_index() -> None:
    error = _invalid("meeting.ended", {**SAMPLE_DATA["meeting.ended"], "attendee_ids": ["u1", 7]})
    assert error.field == "attendee_ids[1]"
    assert error.reason == "expected a string, got integer"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"title": 5}, "title", "expected a string, got integer"),
        ({"title": True}, "title", "expected a string, got boolean"),
        ({"assignee_id": 5}, "assignee_id", "expected a string, got integer"),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_wrong_field_types_are_named(data: dict[str, Any], field: str, reason: str) -> None:
    error = _invalid("task.created", {**SAMPLE_DATA["task.created"], **data})
    assert (error.field, error.reason) == (field, reason)


@pytest.mark.parametrize(
    "ended_at", ["yesterday", "2025-03-04", "2025-03-04T05:06:07", 1741064767890, None]
)
def test_bad_timestamps_are_named(ended_at: object) -> None:
    error = _invalid("meeting.ended", {**SAMPLE_DATA["meeting.ended"], "ended_at": ended_at})
    assert error.field == "ended_at"


@pytest.mark.parametrize(
    "ended_at",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1969-12-31T23:59:59Z",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ],
)
def test_timestamps_out_of_bounds_are_named_not_an_overflow(ended_at: object) -> None:
    """Regression: a data timestamp before year 1 in UTC raised OverflowError (a 500)."""
    data = {**SAMPLE_DATA["meeting.ended"], "ended_at": ended_at}
    error = _invalid("meeting.ended", data)
    assert error.field == "ended_at"
    assert "must be from 1970" in error.reason


def test_naive_datetime_is_refused() -> None:
    data = {**SAMPLE_DATA["meeting.ended"], "ended_at": datetime(2025, 1, 1)}
    assert "timezone" in _invalid("meeting.ended", data).reason


def test_data_that_is_not_an_object_is_refused() -> None:
    schema = load_catalog().schema("webhook.ping")
    with pytest.raises(InvalidEventData) as caught:
        validate(schema, ["s1"], event_type="webhook.ping")
    assert caught.value.field == "data"


def test_nested_paths_maps_ranges_and_enums() -> None:
    schema = AvroSchema.parse(
        {
            "type": "record",
            "name": "Outer",
            "fields": [
                {"name": "n", "type": "int", "default": 0},
                {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                    {"name": "tags", "type": {"type": "map", "values": "long"}},
                    {"name": "color", "type": {"type": "enum", "name": "Color",
                                               "symbols": ["RED", "BLUE"]}},
                ]}},
                {"name": "again", "type": ["null", "Inner"], "default": None},
            ],
        }
    )  # fmt: skip
    good = {"inner": {"tags": {"a": 1}, "color": "RED"}}
    assert validate(schema, good, event_type="x") == {**good, "n": 0, "again": None}
    cases = [
        ({**good, "n": 2**31}, "n"),
        ({"inner": {"tags": {"a": "1"}, "color": "RED"}}, "inner.tags.a"),
        ({"inner": {"tags": {}, "color": "GREEN"}}, "inner.color"),
        ({**good, "again": {"tags": {}, "color": 1}}, "again.color"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidEventData) as caught:
            validate(schema, data, event_type="x")
        assert caught.value.field == field


def test_unknown_event_type_and_bad_envelope_fields_are_refused() -> None:
    codec = make_codec()
    with pytest.raises(UnknownEventType):
        codec.encode_event(event("task.deleted", {}))
    with pytest.raises(InvalidEventData) as caught:
        codec.encode_event(event("webhook.ping", {"subscription_id": "s1"}, id="nope"))
    assert caught.value.field == "id"
    naive = datetime(2025, 1, 1)
    with pytest.raises(InvalidEventData) as caught:
        codec.encode_event(event("webhook.ping", {"subscription_id": "s1"}, occurred_at=naive))
    assert caught.value.field == "occurred_at"


def test_a_subscription_written_before_header_values_were_sealed_reads_them_in_clear() -> None:
    """Records on the log from before `sealed_headers` keep their clear `headers`."""
    reader = make_codec()
    definition = copy.deepcopy(reader.records.subscription.definition)
    assert isinstance(definition, dict)
    definition["fields"] = [f for f in definition["fields"] if f["name"] != "sealed_headers"]
    older = AvroSchema.parse(definition)
    record = subscription_to_avro(full_subscription())
    del record["sealed_headers"]
    codec = RecordCodec(
        records=reader.records,
        catalog=reader.catalog,
        writer_lookup={older.fingerprint: older}.get,
    )
    decoded = codec.decode_subscription(encode(older, record))
    assert decoded.headers == {"x-team": "ops"}
    assert decoded.sealed_headers == {}
    assert decoded == full_subscription()


def _without_trace_fields(schema: AvroSchema) -> AvroSchema:
    """`schema` as it was before records carried a trace context."""
    definition = copy.deepcopy(schema.definition)
    assert isinstance(definition, dict)
    definition["fields"] = [
        f for f in definition["fields"] if f["name"] not in {"trace", "tracestate"}
    ]
    return AvroSchema.parse(definition)


def test_records_written_before_the_trace_context_read_without_one() -> None:
    """Commands and attempts on the log from before tracing, and events without
    `tracestate`, read with no trace context (the schemas' defaults)."""
    reader = make_codec()
    old_command = _without_trace_fields(reader.records.delivery_command)
    old_attempt = _without_trace_fields(reader.records.delivery_attempt)
    old_event_definition = copy.deepcopy(reader.records.event.definition)
    assert isinstance(old_event_definition, dict)
    old_event_definition["fields"] = [
        f for f in old_event_definition["fields"] if f["name"] != "tracestate"
    ]
    old_event = AvroSchema.parse(old_event_definition)
    known = {s.fingerprint: s for s in (old_command, old_attempt, old_event)}
    known |= {s.fingerprint: s for s in reader.writer_schemas()}
    codec = RecordCodec(records=reader.records, catalog=reader.catalog, writer_lookup=known.get)

    command_record = command_to_avro(command())
    del command_record["trace"], command_record["tracestate"]
    decoded_command = codec.decode_delivery_command(encode(old_command, command_record))
    assert (decoded_command.trace, decoded_command.tracestate) == (None, None)

    attempt = DeliveryAttempt(
        delivery_id="d1", event_id=EVENT_ID, event_type="task.created", subscription_id="s1",
        tenant="acme", attempt=1, at=T0, status_code=200, duration_ms=12, error=None,
        response_excerpt="ok", outcome="delivered", next_attempt_at=None,
    )  # fmt: skip
    attempt_record = attempt_to_avro(attempt)
    del attempt_record["trace"], attempt_record["tracestate"]
    assert codec.decode_delivery_attempt(encode(old_attempt, attempt_record)) == attempt

    current = event("task.created", SAMPLE_DATA["task.created"], trace=TRACEPARENT)
    event_record = decode(
        codec.encode_event(current), writer_lookup=known.get, reader=codec.records.event
    )
    del event_record["tracestate"]
    assert codec.decode_event(encode(old_event, event_record)) == current


def test_sealed_header_values_round_trip() -> None:
    codec = make_codec()
    original = full_subscription(headers={}, sealed_headers={"Authorization": b"\x02" * 40})
    assert codec.decode_subscription(codec.encode_subscription(original)) == original


# -- decoding refuses what the records cannot hold ----------------------------------------


def test_unknown_subscription_status_is_undecodable() -> None:
    codec = make_codec()
    record = {**subscription_to_avro(full_subscription()), "status": "archived"}
    with pytest.raises(UndecodableRecord, match="status"):
        codec.decode_subscription(encode(codec.records.subscription, record))


def test_a_value_of_another_record_type_is_undecodable() -> None:
    codec = make_codec()
    with pytest.raises(UndecodableRecord):
        codec.decode_job(codec.encode_delivery_command(command()))


# -- JSON helpers ---------------------------------------------------------------------------


def test_rfc3339_helpers() -> None:
    assert format_rfc3339(T0) == "2025-03-04T05:06:07.890Z"
    assert parse_rfc3339("2025-03-04T05:06:07.890Z") == T0
    assert utc_ms(datetime(2025, 3, 4, 5, 6, 7, 890_999, tzinfo=UTC)) == T0
    assert to_json({"b": b"\x00\x01", "t": T0, "l": (1, 2)}) == {
        "b": "AAE=",
        "t": "2025-03-04T05:06:07.890Z",
        "l": [1, 2],
    }


NEW_FILTER: Final = {
    "data.project_id": {"$in": ["p1", "p2"]},
    "$or": [{"subject.type": "task"}, {"actor": {"$exists": True}}],
}


def test_a_filter_with_paths_and_operators_round_trips_as_written() -> None:
    codec = make_codec()
    original = full_subscription(filter=NEW_FILTER)
    record = subscription_to_avro(original)
    assert record["filter"] == {}
    assert json.loads(record["filter_document"]) == NEW_FILTER
    decoded = codec.decode_subscription(codec.encode_subscription(original))
    assert decoded == original
    assert decoded.filter.document == NEW_FILTER


def test_an_equality_filter_stays_in_the_map_older_routers_read() -> None:
    record = subscription_to_avro(full_subscription())
    assert record["filter"] == {"project_id": "p1", "n": 3, "x": 1.5, "flag": True, "none": None}
    assert record["filter_document"] is None


def test_a_subscription_written_before_filter_documents_matches_as_it_did() -> None:
    """Records on the log from before paths: the map is the filter, each name a `data` field
    taken whole, and writing the subscription again keeps it in the map."""
    reader = make_codec()
    definition = copy.deepcopy(reader.records.subscription.definition)
    assert isinstance(definition, dict)
    definition["fields"] = [f for f in definition["fields"] if f["name"] != "filter_document"]
    older = AvroSchema.parse(definition)
    record = subscription_to_avro(full_subscription())
    del record["filter_document"]
    record["filter"] = {"project_id": "p1", "a.b": 1, "subject": "x"}
    codec = RecordCodec(
        records=reader.records,
        catalog=reader.catalog,
        writer_lookup={older.fingerprint: older}.get,
    )
    decoded = codec.decode_subscription(encode(older, record))
    assert decoded.filter.document == record["filter"]
    data = {"project_id": "p1", "a.b": 1, "subject": "x"}
    assert decoded.filter.matches(event("task.created", data))
    assert not decoded.filter.matches(event("task.created", {**data, "a.b": 2}))
    assert subscription_to_avro(decoded)["filter"] == record["filter"]


def test_a_filter_document_that_does_not_parse_is_undecodable() -> None:
    codec = make_codec()
    record = subscription_to_avro(full_subscription())
    record["filter_document"] = '{"a": {"$nope": 1}}'
    value = encode(codec.records.subscription, record)
    with pytest.raises(UndecodableRecord, match="filter_document"):
        codec.decode_subscription(value)


def test_an_integer_beyond_avro_long_keeps_the_filter_whole() -> None:
    """Regression: an equality on 2**63 (JSON parsers hand it over as an int) went into the
    map of Avro longs, and encoding the subscription failed."""
    codec = make_codec()
    original = full_subscription(filter={"n": 2**63})
    assert subscription_to_avro(original)["filter"] == {}
    decoded = codec.decode_subscription(codec.encode_subscription(original))
    assert decoded.filter.document == {"n": 2**63}
    assert decoded.filter.matches(event("task.created", {"n": 2**63}))
