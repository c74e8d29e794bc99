"""schemas.compatibility: each rule of Avro's schema resolution, pair by pair.

Every row is (reader, writer, path, fragment): `path` None when the reader reads what the
writer wrote, else the path of an expected incompatibility whose reason holds `fragment`.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.catalog import load_catalog
from schemas.compatibility import backward_incompatibilities, incompatibilities
from schemas.errors import Incompatibility, InvalidSchema


def record(*fields: dict[str, Any], name: str = "Order", **attributes: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **attributes}


def field(name: str, schema: Any, **attributes: Any) -> dict[str, Any]:
    return {"name": name, "type": schema, **attributes}


def one(schema: Any, **attributes: Any) -> dict[str, Any]:
    """A record with a single field `x` of `schema`."""
    return record(field("x", schema, **attributes))


def enum(*symbols: str, name: str = "Status", **attributes: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **attributes}


def fixed(size: int, name: str = "Hash") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size}


def array(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def map_of(values: Any) -> dict[str, Any]:
    return {"type": "map", "values": values}


def decimal(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


ADDRESS = record(field("street", "string"), field("zip", "string"), name="Address")
CUSTOMER = record(field("name", "string"), field("address", ADDRESS), name="Customer")
LINKED = record(field("value", "long"), field("next", ["null", "Node"]), name="Node")

OK = (None, "")

PAIRS = [
    # primitives and the promotions, and nothing else
    pytest.param(one("int"), one("int"), *OK, id="same-primitive"),
    pytest.param(one("long"), one("int"), *OK, id="int-read-as-long"),
    pytest.param(one("float"), one("int"), *OK, id="int-read-as-float"),
    pytest.param(one("double"), one("int"), *OK, id="int-read-as-double"),
    pytest.param(one("float"), one("long"), *OK, id="long-read-as-float"),
    pytest.param(one("double"), one("long"), *OK, id="long-read-as-double"),
    pytest.param(one("double"), one("float"), *OK, id="float-read-as-double"),
    pytest.param(one("bytes"), one("string"), *OK, id="string-read-as-bytes"),
    pytest.param(one("string"), one("bytes"), *OK, id="bytes-read-as-string"),
    pytest.param(
        one("int"),
        one("long"),
        "x",
        "written as long, which cannot be read as int",
        id="long-not-int",
    ),
    pytest.param(
        one("float"), one("double"), "x", "cannot be read as float", id="double-not-float"
    ),
    pytest.param(one("long"), one("float"), "x", "float, which cannot", id="float-not-long"),
    pytest.param(one("int"), one("boolean"), "x", "boolean", id="boolean-not-int"),
    pytest.param(one("int"), one("string"), "x", "string, which cannot", id="string-not-int"),
    pytest.param(one("string"), one("null"), "x", "null, which cannot", id="null-not-string"),
    pytest.param("string", "int", "", "the value was written as int", id="root-not-a-record"),
    # records: fields by name, added ones need a default, removed ones are skipped
    pytest.param(
        record(field("id", "string"), field("currency", "string", default="EUR")),
        record(field("id", "string")),
        *OK,
        id="field-added-with-default",
    ),
    pytest.param(
        record(field("id", "string"), field("currency", "string")),
        record(field("id", "string")),
        "currency",
        "field 'currency' was added without a default",
        id="field-added-without-default",
    ),
    pytest.param(
        record(field("id", "string")),
        record(field("id", "string"), field("note", "string")),
        *OK,
        id="field-removed",
    ),
    pytest.param(
        record(field("b", "int"), field("a", "string")),
        record(field("a", "string"), field("b", "int")),
        *OK,
        id="fields-reordered",
    ),
    pytest.param(
        record(field("customer", CUSTOMER)),
        record(
            field(
                "customer",
                record(
                    field("name", "string"),
                    field("address", record(field("street", "string"), name="Address")),
                    name="Customer",
                ),
            )
        ),
        "customer.address.zip",
        "field 'zip' was added without a default",
        id="nested-field-added-without-default",
    ),
    pytest.param(
        record(field("customer", record(field("visits", "long"), name="Customer"))),
        record(field("customer", record(field("visits", "int"), name="Customer"))),
        *OK,
        id="nested-field-promoted",
    ),
    pytest.param(
        record(field("customer", record(field("name", "string"), name="Client"))),
        record(field("customer", record(field("name", "string"), name="Customer"))),
        "customer",
        "record 'Customer', which cannot be read as record 'Client'",
        id="record-renamed",
    ),
    pytest.param(
        record(field("id", "string"), name="Purchase", aliases=["Order"]),
        record(field("id", "string"), name="Order"),
        *OK,
        id="record-renamed-with-alias",
    ),
    pytest.param(
        record(field("id", "string"), name="shop.Purchase", aliases=["sales.Order"]),
        record(field("id", "string"), name="Order", namespace="sales"),
        *OK,
        id="record-renamed-with-qualified-alias",
    ),
    pytest.param(
        record(field("id", "string"), name="Purchase", namespace="shop", aliases=["Order"]),
        record(field("id", "string"), name="Order", namespace="sales"),
        "",
        "record 'Order', which cannot be read as record 'Purchase'",
        id="alias-qualified-by-the-readers-namespace",
    ),
    pytest.param(
        record(field("id", "string"), namespace="shop"),
        record(field("id", "string"), namespace="sales"),
        *OK,
        id="namespace-changed",
    ),
    pytest.param(
        record(field("amount_cents", "long", aliases=["amount"])),
        record(field("amount", "long")),
        *OK,
        id="field-renamed-with-alias",
    ),
    pytest.param(
        record(field("amount_cents", "long")),
        record(field("amount", "long")),
        "amount_cents",
        "was added without a default",
        id="field-renamed-without-alias",
    ),
    pytest.param(
        record(field("amount", "long"), field("total", "long", aliases=["amount"])),
        record(field("amount", "long")),
        "total",
        "was added without a default",
        id="field-alias-taken-by-a-namesake",
    ),
    # named types referred to by name, with and without namespace
    pytest.param(
        record(field("billing", ADDRESS), field("shipping", "Address")),
        record(
            field("billing", record(field("street", "string"), name="Address")),
            field("shipping", "Address"),
            namespace="old",
        ),
        "shipping.zip",
        "field 'zip' was added without a default",
        id="reference-by-name-reports-at-each-use",
    ),
    pytest.param(
        record(
            field("billing", record(field("zip", "int"), name="Address")),
            field("shipping", "shop.Address"),
            namespace="shop",
        ),
        record(
            field("billing", record(field("zip", "long"), name="Address")),
            field("shipping", "Address"),
            namespace="shop",
        ),
        "shipping.zip",
        "long, which cannot be read as int",
        id="reference-by-full-name",
    ),
    # defaults must fit the field's type; a union's, its first branch
    pytest.param(
        one("int", default="zero"),
        record(),
        "x",
        'default, "zero", that does not fit int',
        id="default-of-the-wrong-type",
    ),
    pytest.param(
        one("int", default=2**31),
        record(),
        "x",
        "does not fit int",
        id="default-out-of-int-range",
    ),
    pytest.param(
        one(["null", "string"], default="none"),
        record(),
        "x",
        "does not fit null, the first branch of its union",
        id="default-not-of-the-first-branch",
    ),
    pytest.param(one(["null", "string"], default=None), record(), *OK, id="default-null-first"),
    pytest.param(
        one(
            record(field("a", "int"), field("b", "string", default=""), name="Inner"),
            default={"a": 1},
        ),
        record(),
        *OK,
        id="record-default-leaning-on-a-field-default",
    ),
    pytest.param(
        one(enum("OPEN", "DONE"), default="LOST"),
        record(),
        "x",
        "does not fit enum 'Status'",
        id="enum-default-not-a-symbol",
    ),
    pytest.param(
        one("bytes", default="\u0100"), record(), "x", "fit bytes", id="bytes-default-past-255"
    ),
    pytest.param(one(fixed(2), default="ab"), record(), *OK, id="fixed-default-of-its-size"),
    # enums: every written symbol is read, or the reader has a default
    pytest.param(
        one(enum("OPEN", "DONE", "LOST")), one(enum("OPEN", "DONE")), *OK, id="enum-symbol-added"
    ),
    pytest.param(
        one(enum("OPEN")),
        one(enum("OPEN", "DONE", "LOST")),
        "x",
        "may hold 'DONE', 'LOST', which enum 'Status' lacks",
        id="enum-symbol-removed",
    ),
    pytest.param(
        one(enum("OPEN", "OTHER", default="OTHER")),
        one(enum("OPEN", "DONE")),
        *OK,
        id="enum-symbol-removed-with-default",
    ),
    pytest.param(
        one(enum("OPEN", name="State")), one(enum("OPEN")), "x", "enum 'State'", id="enum-renamed"
    ),
    # arrays and maps, recursively
    pytest.param(one(array("long")), one(array("int")), *OK, id="array-items-promoted"),
    pytest.param(
        one(array("int")),
        one(array("long")),
        "x",
        "array of long, which cannot",
        id="array-items-not",
    ),
    pytest.param(
        record(field("lines", array(record(field("sku", "string"), name="Line")))),
        record(field("lines", array(record(field("qty", "int"), name="Line")))),
        "lines.sku",
        "field 'sku' was added without a default",
        id="array-of-records",
    ),
    pytest.param(
        one(array(enum("A"))),
        one(array(enum("A", "B"))),
        "x",
        "each item of field 'x' may hold 'B'",
        id="array-items-resolved-deeply",
    ),
    pytest.param(one(map_of("double")), one(map_of("float")), *OK, id="map-values-promoted"),
    pytest.param(
        one(map_of(array(enum("A")))),
        one(map_of(array(enum("A", "B")))),
        "x",
        "each item of each value of field 'x'",
        id="map-of-arrays-resolved-deeply",
    ),
    pytest.param(
        one(map_of("int")), one(array("int")), "x", "cannot be read as map", id="array-not-map"
    ),
    # fixed: name and size
    pytest.param(one(fixed(16)), one(fixed(16)), *OK, id="fixed-same"),
    pytest.param(one(fixed(32)), one(fixed(16)), "x", "of 16 bytes", id="fixed-resized"),
    pytest.param(
        one(fixed(16, "Digest")), one(fixed(16)), "x", "fixed 'Digest'", id="fixed-renamed"
    ),
    # unions, either side
    pytest.param(one(["null", "string"]), one("string"), *OK, id="value-into-union"),
    pytest.param(one(["null", "long"]), one("int"), *OK, id="value-into-union-by-promotion"),
    pytest.param(
        one(["null", "string"]),
        one("int"),
        "x",
        "int, which no branch of the union [null, string] can read",
        id="value-into-union-without-branch",
    ),
    pytest.param(
        one("string"),
        one(["null", "string"]),
        "x",
        "written as null, which cannot be read as string",
        id="union-into-value",
    ),
    pytest.param(one("double"), one(["int", "float"]), *OK, id="union-into-value-every-branch"),
    pytest.param(
        one(["null", "int", "string"]), one(["null", "int"]), *OK, id="union-branch-added"
    ),
    pytest.param(
        one(["null", "int"]),
        one(["null", "int", "string"]),
        "x",
        "string, which no branch",
        id="union-branch-removed",
    ),
    pytest.param(
        one(
            [
                record(field("id", "string"), field("tag", "string"), name="a.Item"),
                record(field("id", "string"), name="b.Item"),
            ]
        ),
        one(record(field("id", "string"), name="c.Item")),
        "x.tag",
        "was added without a default",
        id="union-first-matching-branch-is-final",
    ),
    # logical types follow the type under them
    pytest.param(
        one("long"),
        one({"type": "long", "logicalType": "timestamp-millis"}),
        *OK,
        id="timestamp-read-as-long",
    ),
    pytest.param(
        one({"type": "long", "logicalType": "timestamp-millis"}),
        one({"type": "int", "logicalType": "date"}),
        *OK,
        id="date-int-promoted-to-timestamp-long",
    ),
    pytest.param(
        one("int"),
        one({"type": "long", "logicalType": "timestamp-millis"}),
        "x",
        "long (timestamp-millis), which cannot be read as int",
        id="timestamp-not-int",
    ),
    pytest.param(one(decimal(10, 2)), one(decimal(10, 2)), *OK, id="decimal-same"),
    pytest.param(
        one(decimal(10, 3)),
        one(decimal(10, 2)),
        "x",
        "(decimal(10, 2)), which",
        id="decimal-rescaled",
    ),
    pytest.param(one(decimal(2, 5)), one(decimal(10, 2)), *OK, id="invalid-decimal-is-bytes"),
    # recursive types end
    pytest.param(LINKED, LINKED, *OK, id="recursive-same"),
    pytest.param(
        record(
            field("value", "long"),
            field("label", "string"),
            field("next", ["null", "Node"]),
            name="Node",
        ),
        LINKED,
        "label",
        "field 'label' was added without a default",
        id="recursive-field-added",
    ),
]


@pytest.mark.parametrize(("reader", "writer", "path", "fragment"), PAIRS)
def test_resolution_rules(reader: Any, writer: Any, path: str | None, fragment: str) -> None:
    found = incompatibilities(reader, writer)
    if path is None:
        assert found == []
    else:
        assert [f for f in found if f.path == path and fragment in f.reason], found


def test_every_shipped_type_reads_its_own_data_and_its_earlier_optional_fields() -> None:
    for entry in load_catalog().entries():
        schema: Any = entry.avro
        assert incompatibilities(schema, schema) == [], entry.name
    task_created: Any = load_catalog().types["task.created"].avro
    without_assignee = {
        **task_created,
        "fields": [f for f in task_created["fields"] if f["name"] != "assignee_id"],
    }
    assert backward_incompatibilities(task_created, [without_assignee]) == []
    assert backward_incompatibilities(without_assignee, [task_created]) == []


def test_a_recursive_pair_is_reported_once_at_its_root() -> None:
    reader = record(field("value", "int"), field("next", ["null", "Node"]), name="Node")
    assert incompatibilities(reader, LINKED) == [
        Incompatibility("value", "field 'value' was written as long, which cannot be read as int")
    ]


def test_every_reason_is_given() -> None:
    reader = record(field("a", "int"), field("b", "string"), field("c", "string"))
    writer = record(field("a", "long"), field("c", "string"))
    assert [f.path for f in incompatibilities(reader, writer)] == ["a", "b"]


def test_backward_names_each_version_a_reason_fails_against() -> None:
    v1 = record(field("id", "string"))
    v2 = record(field("id", "string"), field("amount", "long", default=0))
    v3 = record(field("id", "string"), field("amount", "long", default=0), field("note", "string"))
    new = record(field("id", "string"), field("amount", "int", default=0), field("note", "string"))
    assert backward_incompatibilities(new, [v1, v2, v3]) == [
        Incompatibility(
            "note", "field 'note' was added without a default (against versions 1 and 2)"
        ),
        Incompatibility(
            "amount",
            "field 'amount' was written as long, which cannot be read as int "
            "(against versions 2 and 3)",
        ),
    ]


def test_backward_is_empty_when_every_version_reads() -> None:
    v1 = record(field("id", "string"))
    v2 = record(field("id", "string"), field("note", ["null", "string"], default=None))
    assert backward_incompatibilities(v2, [v1, v2]) == []
    assert backward_incompatibilities(v1, []) == []


def test_backward_names_a_single_version() -> None:
    (found,) = backward_incompatibilities(one("int"), [one("int"), one("long"), one("int")])
    assert found.reason.endswith("(against version 2)")


@pytest.mark.parametrize(
    "writer",
    [
        pytest.param(record(field("x", "Missing")), id="unknown-name"),
        pytest.param(record(field("x", 5)), id="not-a-schema"),
        pytest.param({"type": "record", "name": "R"}, id="record-without-fields"),
        pytest.param(one({"type": ["null", "int"]}), id="a-union-as-type-name"),
        pytest.param(record(field("a", ADDRESS), field("b", ADDRESS)), id="defined-twice"),
    ],
)
def test_a_malformed_schema_raises_invalid_schema(writer: Any) -> None:
    with pytest.raises(InvalidSchema):
        incompatibilities(one("int"), writer)
