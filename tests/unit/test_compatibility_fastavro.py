"""schemas.compatibility against fastavro, which reads hookline's records.

The property: whenever the checker says a reader reads what a writer wrote, fastavro reads
random data written with the writer through the reader. Writer schemas are drawn at random
(records of primitives, nested records, enums, fixed, arrays, maps, unions, named types used
again by reference, in a namespace), then evolved by one to three edits of the kinds a
schema's author makes, compatible or not. The converse holds on the changes fastavro fails on
for any datum, and on every pair of primitives; the table's compatible pairs read too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException, UnknownType
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject, SearchStrategy

from schemas.compatibility import incompatibilities
from tests.unit.test_compatibility import PAIRS

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
PROMOTIONS = {
    "int": ("long", "float", "double"),
    "long": ("float", "double"),
    "float": ("double",),
    "string": ("bytes",),
    "bytes": ("string",),
}
PRIMITIVE_VALUES: dict[str, SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    # UTF-8, as the spec lets bytes be read as a string, which decodes them
    "bytes": st.text(max_size=4).map(str.encode),
    "string": st.text(max_size=4),
}
# Logical values in the range a reader converts without overflow (a datetime's years)
LOGICAL_VALUES: dict[str, SearchStrategy[Any]] = {
    "timestamp-millis": st.integers(0, 2**40),
    "date": st.integers(0, 2**16),
    "decimal": st.decimals(min_value=-99, max_value=99, places=2),
}
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)


class Shapes:
    """Draws schemas; every named type gets a fresh name and may be referred to later."""

    def __init__(self, data: DataObject) -> None:
        self.data = data
        self.count = 0
        self.defined: list[str] = []

    def draw(self, strategy: SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def root(self) -> dict[str, Any]:
        return {**self.record(depth=2), "namespace": "ev"}

    def schema(self, depth: int) -> Any:
        kinds = ["primitive", "primitive", "primitive", "enum", "fixed"]
        if depth > 0:
            kinds += ["record", "array", "map", "union"]
        if self.defined:
            kinds.append("reference")
        kind = self.draw(st.sampled_from(kinds))
        if kind == "primitive":
            return self.draw(st.sampled_from(PRIMITIVES))
        if kind == "reference":
            return self.draw(st.sampled_from(self.defined))
        if kind == "union":
            return self.union(depth)
        if kind in ("array", "map"):
            child = "items" if kind == "array" else "values"
            return {"type": kind, child: self.schema(depth - 1)}
        if kind == "record":
            return self.record(depth - 1)
        return self.enum() if kind == "enum" else self.fixed()

    def record(self, depth: int) -> dict[str, Any]:
        name = self.fresh("R")
        count = self.draw(st.integers(1, 4))
        fields = [{"name": f"f{i}", "type": self.schema(depth)} for i in range(count)]
        self.defined.append(name)  # only once complete: no recursive types here
        return {"type": "record", "name": name, "fields": fields}

    def enum(self) -> dict[str, Any]:
        name = self.fresh("E")
        symbols = self.draw(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=4, unique=True))
        self.defined.append(name)
        return {"type": "enum", "name": name, "symbols": symbols}

    def fixed(self) -> dict[str, Any]:
        name = self.fresh("F")
        self.defined.append(name)
        return {"type": "fixed", "name": name, "size": self.draw(st.integers(1, 4))}

    def union(self, depth: int) -> list[Any]:
        kinds = self.draw(
            st.lists(
                st.sampled_from([*PRIMITIVES, "array", "map", "record", "enum"]),
                min_size=2,
                max_size=3,
                unique=True,
            )
        )
        branches: list[Any] = []
        for kind in kinds:
            if kind in PRIMITIVES:
                branches.append(kind)
            elif kind in ("array", "map"):
                child = "items" if kind == "array" else "values"
                branches.append({"type": kind, child: self.draw(st.sampled_from(PRIMITIVES))})
            else:
                branches.append(self.record(depth - 1) if kind == "record" else self.enum())
        return branches


def sites(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) whose `container[key]` is a schema inside `node`."""
    if isinstance(node, list):
        for index, branch in enumerate(node):
            yield node, index
            yield from sites(branch)
    elif isinstance(node, dict):
        for child in ("items", "values"):
            if child in node:
                yield node, child
                yield from sites(node[child])
        for field in node.get("fields", ()):
            yield field, "type"
            yield from sites(field["type"])


def named_definitions(root: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    inner = [c[k] for c, k in sites(root)]
    return [n for n in [root, *inner] if isinstance(n, dict) and n.get("type") == kind]


def rename_references(node: Any, old: str, new: str) -> None:
    for container, key in sites(node):
        if container[key] == old:
            container[key] = new


def values(node: Any, named: dict[str, SearchStrategy[Any]]) -> SearchStrategy[Any]:
    """Data of a schema; `named` collects named types as they are defined, by name as written
    and by full name."""
    if isinstance(node, list):
        return st.one_of([values(branch, named) for branch in node])
    if isinstance(node, str) and node not in PRIMITIVE_VALUES:
        return named[node] if node in named else named[node.rpartition(".")[2]]
    kind = node if isinstance(node, str) else node["type"]
    if kind in PRIMITIVE_VALUES:
        logical = node.get("logicalType", "") if isinstance(node, dict) else ""
        return LOGICAL_VALUES.get(logical, PRIMITIVE_VALUES[kind])
    if kind == "array":
        return st.lists(values(node["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=3), values(node["values"], named), max_size=3)
    return named_values(node, named)


def named_values(
    node: dict[str, Any], named: dict[str, SearchStrategy[Any]]
) -> SearchStrategy[Any]:
    built: list[SearchStrategy[Any]] = []
    strategy = st.deferred(lambda: built[0])  # a record may hold itself
    named[node["name"]] = strategy
    if "namespace" in node:
        named[f"{node['namespace']}.{node['name']}"] = strategy
    if node["type"] == "record":
        built.append(
            st.fixed_dictionaries(
                {field["name"]: values(field["type"], named) for field in node["fields"]}
            )
        )
    elif node["type"] == "enum":
        built.append(st.sampled_from(node["symbols"]))
    else:
        built.append(st.binary(min_size=node["size"], max_size=node["size"]))
    return strategy


Edit = Callable[[Shapes, dict[str, Any]], None]


def promote(shapes: Shapes, root: dict[str, Any]) -> None:
    places = [(c, k) for c, k in sites(root) if isinstance(c[k], str) and c[k] in PROMOTIONS]
    if places:
        container, key = shapes.draw(st.sampled_from(places))
        container[key] = shapes.draw(st.sampled_from(PROMOTIONS[container[key]]))


def retype(shapes: Shapes, root: dict[str, Any]) -> None:
    places = [(c, k) for c, k in sites(root) if c[k] in PRIMITIVES and not isinstance(c, list)]
    if places:
        container, key = shapes.draw(st.sampled_from(places))
        container[key] = shapes.draw(st.sampled_from(PRIMITIVES))


def wrap_in_union(shapes: Shapes, root: dict[str, Any]) -> None:
    places = [
        (c, k) for c, k in sites(root) if not isinstance(c, list) and not isinstance(c[k], list)
    ]
    if places:
        container, key = shapes.draw(st.sampled_from(places))
        partner = shapes.draw(st.sampled_from([p for p in PRIMITIVES if p != container[key]]))
        container[key] = shapes.draw(st.permutations([partner, container[key]]))


def drop_branch(shapes: Shapes, root: dict[str, Any]) -> None:
    unions = [c[k] for c, k in sites(root) if isinstance(c[k], list) and len(c[k]) > 1]
    if unions:
        union = shapes.draw(st.sampled_from(unions))
        del union[shapes.draw(st.integers(0, len(union) - 1))]


def add_field(shapes: Shapes, root: dict[str, Any]) -> None:
    record = shapes.draw(st.sampled_from(named_definitions(root, "record")))
    schema = shapes.draw(
        st.sampled_from(PRIMITIVES) | st.sampled_from([["null", "string"], ["int", "null"]])
    )
    field: dict[str, Any] = {"name": shapes.fresh("added"), "type": schema}
    if shapes.draw(st.booleans()):
        first = schema[0] if isinstance(schema, list) else schema
        default = shapes.draw(PRIMITIVE_VALUES[first])
        # bytes in JSON: a string whose code points 0-255 stand for the bytes
        field["default"] = default.decode("latin-1") if isinstance(default, bytes) else default
    record["fields"].append(field)


def remove_field(shapes: Shapes, root: dict[str, Any]) -> None:
    record = shapes.draw(st.sampled_from(named_definitions(root, "record")))
    del record["fields"][shapes.draw(st.integers(0, len(record["fields"]) - 1))]


def rename_field(shapes: Shapes, root: dict[str, Any]) -> None:
    record = shapes.draw(st.sampled_from(named_definitions(root, "record")))
    if record["fields"]:
        field = shapes.draw(st.sampled_from(record["fields"]))
        if shapes.draw(st.booleans()):
            field["aliases"] = [field["name"]]
        field["name"] = shapes.fresh("renamed")


def rename_type(shapes: Shapes, root: dict[str, Any]) -> None:
    named = named_definitions(root, "record")[1:] + named_definitions(root, "enum")
    if named:
        definition = shapes.draw(st.sampled_from(named))
        old, new = definition["name"], shapes.fresh("N")
        if shapes.draw(st.booleans()):
            definition["aliases"] = [old]
        definition["name"] = new
        rename_references(root, old, new)


def edit_symbols(shapes: Shapes, root: dict[str, Any]) -> None:
    enums = named_definitions(root, "enum")
    if enums:
        enum = shapes.draw(st.sampled_from(enums))
        symbols = enum["symbols"]
        change = shapes.draw(st.sampled_from(["add", "remove", "default"]))
        if change == "add" and len(symbols) < 5:
            symbols.append(shapes.draw(st.sampled_from([s for s in "ABCDE" if s not in symbols])))
        elif change == "remove" and len(symbols) > 1:
            symbols.remove(shapes.draw(st.sampled_from(symbols)))
        else:
            enum["default"] = shapes.draw(st.sampled_from(symbols))


EDITS: tuple[Edit, ...] = (
    promote,
    retype,
    wrap_in_union,
    drop_branch,
    add_field,
    remove_field,
    rename_field,
    rename_type,
    edit_symbols,
)


def evolve(shapes: Shapes, writer: dict[str, Any]) -> dict[str, Any]:
    """`writer` after one to three edits; an edit that leaves no valid schema (one that drops
    the definition of a type referred to later) is not kept."""
    reader = writer
    for _ in range(shapes.draw(st.integers(1, 3))):
        edit = shapes.draw(st.sampled_from(EDITS))
        edited = copy.deepcopy(reader)
        edit(shapes, edited)
        try:
            parse_schema(copy.deepcopy(edited))
        except (SchemaParseException, UnknownType):
            continue
        event(edit.__name__)
        reader = edited
    return reader


def read_through(writer: Any, reader: Any, datum: Any) -> Any:
    buffer = BytesIO()
    written = parse_schema(copy.deepcopy(writer))
    schemaless_writer(buffer, written, datum)
    buffer.seek(0)
    return schemaless_reader(buffer, written, parse_schema(copy.deepcopy(reader)))


@PROPERTY
@given(st.data())
def test_fastavro_reads_whatever_the_checker_accepts(data: DataObject) -> None:
    shapes = Shapes(data)
    writer = shapes.root()
    reader = evolve(shapes, writer)
    found = incompatibilities(reader, writer)
    event("incompatible" if found else "compatible")
    if found:
        return
    for datum in data.draw(st.lists(values(writer, {}), min_size=1, max_size=3)):
        read_through(writer, reader, datum)


SAMPLES = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 7,
    "float": 1.5,
    "double": 1.5,
    "bytes": b"ok",
    "string": "ok",
}


@pytest.mark.parametrize("read", PRIMITIVES)
@pytest.mark.parametrize("written", PRIMITIVES)
def test_primitive_verdicts_are_fastavros(written: str, read: str) -> None:
    try:
        read_through(written, read, SAMPLES[written])
    except SchemaResolutionError:
        readable = False
    else:
        readable = True
    assert (incompatibilities(read, written) == []) == readable


ENUM_AB = {"type": "enum", "name": "Probe", "symbols": ["A", "B"]}
# (writer's probe, reader's probe, the probe's value): a change fastavro fails on for any datum
UNREADABLE = [
    pytest.param("long", "int", 1, id="demoted"),
    pytest.param(ENUM_AB, {**ENUM_AB, "symbols": ["A"]}, "B", id="enum-symbol-removed"),
    pytest.param(["null", "string"], "string", None, id="union-narrowed-to-a-value"),
    pytest.param("int", ["null", "string"], 1, id="value-into-union-without-branch"),
    pytest.param(
        {"type": "fixed", "name": "Probe", "size": 2},
        {"type": "fixed", "name": "Probe", "size": 3},
        b"ok",
        id="fixed-resized",
    ),
    pytest.param(
        {"type": "record", "name": "Probe", "fields": []},
        {"type": "record", "name": "Renamed", "fields": []},
        {},
        id="record-renamed",
    ),
    pytest.param(
        {"type": "record", "name": "Probe", "fields": []},
        {"type": "record", "name": "Probe", "fields": [{"name": "x", "type": "int"}]},
        {},
        id="nested-field-added-without-default",
    ),
    pytest.param(None, "string", None, id="field-added-without-default"),
]


@pytest.mark.parametrize(("written", "read", "value"), UNREADABLE)
@settings(PROPERTY, max_examples=10)
@given(data=st.data())
def test_what_fastavro_cannot_read_the_checker_refuses(
    written: Any, read: Any, value: Any, data: DataObject
) -> None:
    writer = Shapes(data).root()
    datum = data.draw(values(writer, {}))
    reader = copy.deepcopy(writer)
    reader["fields"].append({"name": "probe", "type": read})
    if written is not None:
        writer["fields"].append({"name": "probe", "type": written})
        datum["probe"] = value
    assert [f.path for f in incompatibilities(reader, writer)] in (["probe"], ["probe.x"])
    with pytest.raises(SchemaResolutionError):
        read_through(writer, reader, datum)


# fastavro refuses an invalid decimal outright, where the spec reads the bytes under it
COMPATIBLE_PAIRS = [p for p in PAIRS if p.values[2] is None and p.id != "invalid-decimal-is-bytes"]


@pytest.mark.parametrize(("reader", "writer", "path", "fragment"), COMPATIBLE_PAIRS)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(data=st.data())
def test_fastavro_reads_the_tables_compatible_pairs(
    reader: Any, writer: Any, path: None, fragment: str, data: DataObject
) -> None:
    del path, fragment
    read_through(writer, reader, data.draw(values(writer, {})))
