"""Unit tests of subscription filters: the evaluator, the grammar, its bounds, and the check
against the event types' schemas (core.filters, core.filter_schema)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidField
from core.filter_schema import check_filter_fits
from core.filters import (
    FILTER_LIMITS,
    AllOf,
    FilterValue,
    PathTest,
    legacy_fields,
    legacy_filter,
    parse_filter,
)
from core.json_value import JsonValue
from core.records import DomainEvent, Ref
from schemas.catalog import load_catalog

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
DATA: Mapping[str, JsonValue] = {
    "amount": 150,
    "rate": 0.5,
    "priority": "high",
    "title": "b",
    "flag": True,
    "note": None,
    "tags": ["a"],
    "customer": {"address": {"country": "NL"}},
}
USER = Ref("user", "u-1")


def event(data: Mapping[str, JsonValue] = DATA, *, actor: Ref | None = USER) -> DomainEvent:
    return DomainEvent(
        id="0f8fad5b-d9cb-469f-a165-70867728950e",
        type="order.paid",
        tenant="acme",
        occurred_at=NOW,
        subject=Ref("order", "o-1"),
        actor=actor,
        data=data,
    )


# -- the evaluator -------------------------------------------------------------------------

EVALUATIONS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    # equality, bare and spelled out; JSON equality (1 is 1.0, true is not 1)
    ({"data.amount": 150}, True),
    ({"data.amount": 150.0}, True),
    ({"data.amount": {"$eq": 150}}, True),
    ({"data.amount": {"$eq": 151}}, False),
    ({"data.amount": True}, False),
    ({"data.flag": 1}, False),
    ({"data.flag": True}, True),
    ({"data.amount": "150"}, False),
    ({"data.note": None}, True),
    ({"data.missing": None}, False),  # null equals a null field, not a missing one
    ({"data.tags": "a"}, False),  # an array equals no value
    ({"data.amount": {"$neq": 150}}, False),
    ({"data.amount": {"$neq": 1}}, True),
    ({"data.missing": {"$neq": 1}}, True),  # not equal: a missing field is not 1
    # lists
    ({"data.priority": {"$in": ["high", "urgent"]}}, True),
    ({"data.priority": {"$in": ["low"]}}, False),
    ({"data.priority": {"$nin": ["high", "urgent"]}}, False),
    ({"data.priority": {"$nin": ["low"]}}, True),
    ({"data.missing": {"$in": [None]}}, False),
    ({"data.missing": {"$nin": [1]}}, True),
    ({"data.flag": {"$in": [1, "true"]}}, False),
    ({"data.amount": {"$in": [1, 150.0]}}, True),
    # order: numbers with numbers, strings with strings; anything else does not match
    ({"data.amount": {"$gt": 100}}, True),
    ({"data.amount": {"$gt": 150}}, False),
    ({"data.amount": {"$gte": 150}}, True),
    ({"data.amount": {"$lt": 150}}, False),
    ({"data.amount": {"$lte": 150.0}}, True),
    ({"data.rate": {"$lt": 1}}, True),
    ({"data.amount": {"$gt": 100, "$lt": 200}}, True),
    ({"data.amount": {"$gt": 100, "$lt": 120}}, False),
    ({"data.title": {"$gt": "a"}}, True),
    ({"data.title": {"$lt": "a"}}, False),
    ({"data.amount": {"$gt": "1"}}, False),
    ({"data.title": {"$gt": 1}}, False),
    ({"data.flag": {"$gte": 0}}, False),  # a boolean is not a number
    ({"data.note": {"$gt": 1}}, False),
    ({"data.missing": {"$lte": 1}}, False),
    ({"data.tags": {"$gt": 1}}, False),
    # $exists: present and not null
    ({"data.amount": {"$exists": True}}, True),
    ({"data.note": {"$exists": True}}, False),
    ({"data.note": {"$exists": False}}, True),
    ({"data.missing": {"$exists": False}}, True),
    ({"data.customer": {"$exists": True}}, True),
    # dotted paths into nested records; through a value that is not an object: missing
    ({"data.customer.address.country": "NL"}, True),
    ({"data.customer.address.country": "DE"}, False),
    ({"data.customer.address.country.code": {"$exists": False}}, True),
    ({"data.tags.0": "a"}, False),
    ({"data.note.x": {"$exists": True}}, False),
    # the first name may be a `data` field: how filters were written before paths
    ({"amount": 150, "customer.address.country": "NL"}, True),
    # subject and actor
    ({"subject.type": "order", "subject.id": "o-1"}, True),
    ({"subject.type": {"$in": ["task"]}}, False),
    ({"subject": {"$exists": True}}, True),
    ({"subject.other": {"$exists": True}}, False),
    ({"actor.id": "u-1"}, True),
    ({"actor.type": {"$neq": "user"}}, False),
    # $and / $or, nested
    ({"$or": [{"data.amount": {"$lt": 10}}, {"data.priority": "high"}]}, True),
    ({"$or": [{"data.amount": {"$lt": 10}}, {"data.priority": "low"}]}, False),
    ({"$and": [{"data.amount": {"$gt": 10}}, {"data.priority": "low"}]}, False),
    (
        {
            "data.priority": {"$in": ["high", "urgent"]},
            "$or": [
                {"subject.type": "task"},
                {"$and": [{"actor": {"$exists": True}}, {"data.rate": {"$lte": 0.5}}]},
            ],
        },
        True,
    ),
]


@pytest.mark.parametrize(("document", "expected"), EVALUATIONS)
def test_evaluation(document: dict[str, Any], *, expected: bool) -> None:
    assert parse_filter(document).matches(event()) is expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"actor": None}, True),
        ({"actor": {"$exists": False}}, True),
        ({"actor.id": {"$exists": True}}, False),
        ({"actor.id": {"$neq": "u-1"}}, True),
        ({"actor.id": "u-1"}, False),
    ],
)
def test_an_event_without_actor(document: dict[str, Any], *, expected: bool) -> None:
    assert parse_filter(document).matches(event(actor=None)) is expected


def test_evaluation_never_raises_on_odd_data() -> None:
    odd = event({"amount": float("nan"), "customer": "text", "tags": [1, {"a": 1}]})
    for document, _ in EVALUATIONS:
        parse_filter(document).matches(odd)  # bool or not, it returns
    assert not parse_filter({"data.amount": {"$gt": 1}}).matches(odd)
    assert not parse_filter({"data.amount": {"$lte": 1}}).matches(odd)


def test_a_legacy_filter_keeps_a_dotted_name_whole() -> None:
    """Old records named top-level `data` fields; a dot was part of the name, not a path."""
    legacy = legacy_filter({"a.b": 1})
    assert legacy.condition == AllOf((PathTest(("data", "a.b"), "$eq", 1),))
    assert legacy.matches(event({"a.b": 1}))
    assert not legacy.matches(event({"a": {"b": 1}}))


def test_legacy_fields_only_for_what_the_old_map_reads_the_same() -> None:
    assert legacy_fields(parse_filter({"project_id": "p-1", "n": None})) == {
        "project_id": "p-1",
        "n": None,
    }
    assert legacy_fields(parse_filter({})) == {}
    assert legacy_fields(parse_filter({"data.project_id": "p-1"})) is None
    assert legacy_fields(parse_filter({"subject.type": "task"})) is None
    assert legacy_fields(parse_filter({"n": {"$gt": 1}})) is None
    assert legacy_fields(legacy_filter({"a.b": 1, "subject": "x"})) == {"a.b": 1, "subject": "x"}


# -- properties ----------------------------------------------------------------------------

_VALUES: st.SearchStrategy[FilterValue] = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 1.5]), st.text("ab")
)
_DATA = st.dictionaries(st.sampled_from(["x", "y"]), st.one_of(_VALUES, st.lists(_VALUES)))


@given(data=_DATA, values=st.lists(_VALUES, min_size=1, max_size=4))
def test_nin_is_not_in(data: dict[str, JsonValue], values: list[JsonValue]) -> None:
    e = event(data)
    in_ = parse_filter({"x": {"$in": values}}).matches(e)
    assert parse_filter({"x": {"$nin": values}}).matches(e) is not in_
    assert in_ is any(parse_filter({"x": {"$eq": v}}).matches(e) for v in values)


@given(data=_DATA, value=_VALUES)
def test_neq_is_not_eq_and_bare_is_eq(data: dict[str, JsonValue], value: FilterValue) -> None:
    e = event(data)
    eq = parse_filter({"x": {"$eq": value}}).matches(e)
    assert parse_filter({"x": value}).matches(e) is eq
    assert parse_filter({"x": {"$neq": value}}).matches(e) is not eq


_CLAUSES = st.sampled_from(
    [
        {"x": {"$gt": 0}},
        {"x": {"$exists": True}},
        {"y": "a"},
        {"x": {"$lte": 1.5}, "y": {"$nin": [None]}},
    ]
)


@given(data=_DATA, clause=_CLAUSES, other=_CLAUSES)
def test_and_or_of_one_and_of_two(
    data: dict[str, JsonValue], clause: dict[str, Any], other: dict[str, Any]
) -> None:
    e = event(data)
    alone = parse_filter(clause).matches(e)
    second = parse_filter(other).matches(e)
    assert parse_filter({"$and": [clause]}).matches(e) is alone
    assert parse_filter({"$or": [clause]}).matches(e) is alone
    assert parse_filter({"$and": [clause, other]}).matches(e) is (alone and second)
    assert parse_filter({"$or": [clause, other]}).matches(e) is (alone or second)


# -- the grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"data.amount": {"$foo": 1}}, "filter.data.amount.$foo"),
        ({"data.amount": {"gt": 1}}, "filter.data.amount.gt"),
        ({"$nor": [{"a": 1}]}, "filter.$nor"),
        ({"$eq": 1}, "filter.$eq"),
        ({"$or": []}, "filter.$or"),
        ({"$or": {"a": 1}}, "filter.$or"),
        ({"$or": [{"a": 1}, 2]}, "filter.$or[1]"),
        ({"$and": [{"$or": [{"a": {"$in": 1}}]}]}, "filter.$and[0].$or[0].a.$in"),
        ({"data.amount": {"$in": []}}, "filter.data.amount.$in"),
        ({"data.amount": {"$nin": [1, [2]]}}, "filter.data.amount.$nin[1]"),
        ({"data.amount": {"$gt": None}}, "filter.data.amount.$gt"),
        ({"data.amount": {"$lte": True}}, "filter.data.amount.$lte"),
        ({"data.amount": {"$gte": [1]}}, "filter.data.amount.$gte"),
        ({"data.amount": {"$exists": 1}}, "filter.data.amount.$exists"),
        ({"data.amount": {"$eq": {"a": 1}}}, "filter.data.amount.$eq"),
        ({"data.amount": [1]}, "filter.data.amount"),
        ({"data.amount": {}}, "filter.data.amount"),
        ({"data.amount": float("nan")}, "filter.data.amount"),
        ({"data.amount": {"$lt": float("inf")}}, "filter.data.amount.$lt"),
        ({"data..amount": 1}, "filter.data..amount"),
        ({"": 1}, "filter."),
        ({"a.": 1}, "filter.a."),
        ({"a": "\ud800"}, "filter.a"),
        ({"\x00": 1}, "filter"),
        ({"a": {"$in": ["ok", "\x00"]}}, "filter.a.$in[1]"),
    ],
)
def test_grammar_errors_name_the_place(document: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_filter(document)
    assert caught.value.field == field


def _nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        document = {"$or": [document]}
    return document


def test_bounds() -> None:
    limits = FILTER_LIMITS
    parse_filter(_nested(limits.max_depth))
    with pytest.raises(InvalidField, match="nest at most"):
        parse_filter(_nested(limits.max_depth + 1))
    many: dict[str, JsonValue] = {f"f{i}": i for i in range(limits.max_tests)}
    parse_filter(many)
    with pytest.raises(InvalidField, match="at most 50 tests") as caught:
        parse_filter({"$or": [many, {"x": {"$gt": 1}}]})
    assert caught.value.field == "filter.$or[1].x.$gt"
    parse_filter({"a": {"$in": list(range(limits.max_in_values))}})
    with pytest.raises(InvalidField, match="at most 100 values"):
        parse_filter({"a": {"$nin": list(range(limits.max_in_values + 1))}})
    with pytest.raises(InvalidField, match="at most 10 names"):
        parse_filter({".".join(["data"] * (limits.max_path_segments + 1)): 1})
    with pytest.raises(InvalidField, match="longer than"):
        parse_filter({"a": "x" * (limits.max_text_chars + 1)})


def test_a_stored_filter_is_read_whatever_the_bounds() -> None:
    deep = _nested(FILTER_LIMITS.max_depth + 3)
    assert parse_filter(deep, limits=None).matches(event({"a": 1}))


# -- against the event types' schemas -------------------------------------------------------

_STRING: dict[str, JsonValue] = {"type": "string"}
SCHEMAS: dict[str, Mapping[str, JsonValue]] = {
    "order.paid": {
        "type": "object",
        "properties": {
            "amount": {"type": "integer"},
            "priority": {"type": "string", "enum": ["low", "high"]},
            "note": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": _STRING},
            "meta": {"type": "object", "additionalProperties": _STRING},
            "customer": {
                "type": "object",
                "properties": {
                    "address": {
                        "anyOf": [
                            {"type": "null"},
                            {"type": "object", "properties": {"country": _STRING}},
                        ]
                    }
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    "order.refunded": {
        "type": "object",
        "properties": {"reason": _STRING, "amount": {"type": "number"}},
        "additionalProperties": False,
    },
    "user.created": {"type": "object", "properties": {"reason": {"type": "integer"}}},
}


@pytest.mark.parametrize(
    ("document", "types"),
    [
        ({"data.amount": {"$gte": 100}, "amount": {"$in": [1, 2.5]}}, ["order.paid"]),
        ({"data.priority": {"$gt": "a"}, "data.note": None}, ["order.paid"]),
        ({"data.customer.address.country": "NL"}, ["order.paid"]),
        ({"data.customer.address": None}, ["order.paid"]),
        ({"data.customer": {"$exists": True}, "data.tags": {"$exists": False}}, ["order.paid"]),
        ({"data.meta.anything": "x"}, ["order.paid"]),
        ({"subject.type": "order", "actor.id": "u", "actor": None}, ["order.paid"]),
        ({"data.reason": "late"}, ["order.*"]),  # a field of one of the types is enough
        ({"data.reason": {"$in": ["late", 3]}}, ["*"]),  # a string in one, a number in another
        ({"$or": [{"data.reason": "late"}, {"data.priority": "high"}]}, ["order.*"]),
    ],
)
def test_filters_that_fit(document: dict[str, Any], types: list[str]) -> None:
    check_filter_fits(parse_filter(document), types, SCHEMAS)


@pytest.mark.parametrize(
    ("document", "types", "field", "message"),
    [
        ({"data.nope": 1}, ["order.paid"], "filter.data.nope", "no event type"),
        ({"nope": {"$exists": True}}, ["order.*"], "filter.nope.$exists", "'data.nope'"),
        ({"data.reason": "late"}, ["order.paid"], "filter.data.reason", "no event type"),
        ({"data.customer.zip": "1"}, ["order.paid"], "filter.data.customer.zip", "no event"),
        ({"data.tags.x": "a"}, ["order.paid"], "filter.data.tags.x", "no event type"),
        ({"subject.name": "x"}, ["order.paid"], "filter.subject.name", "no event type"),
        ({"data.amount": {"$gt": "5"}}, ["order.paid"], "filter.data.amount.$gt", "orders"),
        ({"data.priority": {"$lt": 5}}, ["order.paid"], "filter.data.priority.$lt", "orders"),
        ({"data.amount": "5"}, ["order.paid"], "filter.data.amount", "never string"),
        ({"data.amount": {"$in": [1, "x"]}}, ["order.paid"], "filter.data.amount.$in[1]", "never"),
        ({"data.priority": None}, ["order.paid"], "filter.data.priority", "never null"),
        ({"data.customer": "x"}, ["order.paid"], "filter.data.customer", "holds object"),
        ({"data.tags": {"$neq": "a"}}, ["order.paid"], "filter.data.tags.$neq", "holds array"),
        (
            {"$or": [{"data.amount": 1}, {"$and": [{"data.flag": True}]}]},
            ["order.*"],
            "filter.$or[1].$and[0].data.flag",
            "no event type",
        ),
    ],
)
def test_filters_that_cannot_match_are_refused(
    document: dict[str, Any], types: list[str], field: str, message: str
) -> None:
    with pytest.raises(InvalidField, match=message) as caught:
        check_filter_fits(parse_filter(document), types, SCHEMAS)
    assert caught.value.field == field


def test_the_shipped_catalog_describes_what_filters_read() -> None:
    schemas = {entry.name: entry.json_schema for entry in load_catalog().entries()}
    fits = parse_filter(
        {"data.project_id": "p-1", "data.assignee_id": None, "subject.id": {"$exists": True}}
    )
    check_filter_fits(fits, ["task.created"], schemas)
    check_filter_fits(
        parse_filter({"data.ended_at": {"$gte": "2025-01-01T00:00:00Z"}}), ["*"], schemas
    )
    with pytest.raises(InvalidField) as caught:
        check_filter_fits(fits, ["meeting.ended"], schemas)
    assert caught.value.field == "filter.data.project_id"
