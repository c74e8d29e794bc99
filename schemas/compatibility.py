"""Whether one Avro schema reads the data another wrote, and where and why not.

The event-type registry refuses a new version of a type's `data` schema unless it reads the
data of every earlier version (backward compatibility). The rules are those of the "Schema
Resolution" section of the Avro specification, walked ahead of time over the two schemas
instead of over a datum. Where the specification leaves room, the stricter reading is taken,
the one fastavro (which reads hookline's records) also needs: a reader's alias names the
writer's full name; a writer's field goes to the reader's field of its name before one that
has it as an alias; a union field's default fits the union's first branch, which every
implementation accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard

from schemas.errors import Incompatibility, InvalidSchema

SchemaJson: TypeAlias = Mapping[str, Any] | str | list[Any]
"""An Avro schema as parsed JSON: a type name, a type definition, or a union."""

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# The named types, each with the attribute it cannot do without.
_NAMED = {"record": "fields", "error": "fields", "enum": "symbols", "fixed": "size"}
# What a writer's primitive may be read as besides itself: the specification's promotions.
_PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_INT_BITS = {"int": 32, "long": 64}
# The schema inside each container type, and what a reason calls one of its elements.
_CHILD = {"array": "items", "map": "values"}
_ELEMENT = {"array": "item", "map": "value"}


def incompatibilities(reader: SchemaJson, writer: SchemaJson) -> list[Incompatibility]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can).

    Both should be schemas `AvroSchema.parse` accepts; a reference to an undefined named type
    or a node that is no schema raises `InvalidSchema`.
    """
    return _check(_Schema.of(reader), _Schema.of(writer))


def backward_incompatibilities(
    new: SchemaJson, earlier: Sequence[SchemaJson]
) -> list[Incompatibility]:
    """Why `new` cannot read the data of every schema in `earlier` (empty: it reads them all).

    `earlier` is in version order from version 1. A reason found against several versions is
    given once, naming them all ("... (against versions 1 and 2)").
    """
    reader = _Schema.of(new)
    versions: dict[Incompatibility, list[int]] = {}
    for version, writer in enumerate(earlier, start=1):
        for found in _check(reader, _Schema.of(writer)):
            versions.setdefault(found, []).append(version)
    return [
        Incompatibility(found.path, f"{found.reason} (against {_versions(numbers)})")
        for found, numbers in versions.items()
    ]


def _check(reader: _Schema, writer: _Schema) -> list[Incompatibility]:
    return [issue.public() for issue in _Resolver(reader, writer).resolve(reader.root, writer.root)]


def _versions(numbers: Sequence[int]) -> str:
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    return f"versions {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


@dataclass(frozen=True, slots=True)
class _Schema:
    """A schema whose named types, references and aliases carry full names, and its named
    types by full name."""

    root: Any
    named: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, definition: SchemaJson) -> _Schema:
        named: dict[str, dict[str, Any]] = {}
        try:
            root = _qualified(definition, "", named)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidSchema(f"not an Avro schema: {exc!r}") from exc
        return cls(root, named)

    def deref(self, node: Any) -> Any:
        """The definition a named reference stands for; any other node as it is."""
        if isinstance(node, str) and node not in _PRIMITIVES:
            return self.named[node]
        return node

    def describe(self, node: Any) -> str:
        """A type as a reason names it: "long", "record 'Order'", "array of string"."""
        node = self.deref(node)
        if isinstance(node, list):
            return "union [" + ", ".join(self.describe(branch) for branch in node) + "]"
        if isinstance(node, str):
            return node
        kind = _kind(node)
        if kind in ("record", "enum"):
            text = f"{kind} '{_short(node['name'])}'"
        elif kind == "fixed":
            text = f"fixed '{_short(node['name'])}' of {node['size']} bytes"
        elif kind == "array":
            text = f"array of {self.describe(node['items'])}"
        elif kind == "map":
            text = f"map of {self.describe(node['values'])}"
        else:
            text = kind
        decimal = _decimal(node)
        if decimal is not None:
            return f"{text} (decimal({decimal[0]}, {decimal[1]}))"
        logical = node.get("logicalType")
        return f"{text} ({logical})" if isinstance(logical, str) else text


def _qualified(node: Any, namespace: str, named: dict[str, dict[str, Any]]) -> Any:
    """`node` with full names in definitions, references and aliases, by the spec's rules."""
    if isinstance(node, list):
        return [_qualified(branch, namespace, named) for branch in node]
    if isinstance(node, str):
        return _reference(node, namespace, named)
    if not isinstance(node, Mapping):
        raise InvalidSchema(f"not an Avro schema: {node!r}")
    kind = node["type"]
    if not isinstance(kind, str):
        raise InvalidSchema(f"a type is named by a string, not {kind!r}")
    if kind in _NAMED:
        return _define(node, namespace, named)
    if kind in _CHILD:
        child = _CHILD[kind]
        return {**node, child: _qualified(node[child], namespace, named)}
    if kind in _PRIMITIVES:
        return dict(node)
    return _reference(kind, namespace, named)  # {"type": "SomeName"}


def _define(node: Mapping[str, Any], enclosing: str, named: dict[str, dict[str, Any]]) -> Any:
    full = _full_name(node["name"], node.get("namespace"), enclosing)
    if full in named:
        raise InvalidSchema(f"type {full!r} is defined twice")
    if _NAMED[node["type"]] not in node:
        raise InvalidSchema(f"{node['type']} {full!r} has no {_NAMED[node['type']]}")
    space = full.rpartition(".")[0]
    aliases = [_full_name(alias, None, space) for alias in node.get("aliases", ())]
    definition = {**node, "name": full, "aliases": aliases}
    named[full] = definition  # before its fields: a record may refer to itself
    if "fields" in node:
        definition["fields"] = [
            {**field, "type": _qualified(field["type"], space, named)} for field in node["fields"]
        ]
    return definition


def _reference(name: str, namespace: str, named: Mapping[str, Any]) -> str:
    if name in _PRIMITIVES:
        return name
    full = _full_name(name, None, namespace)
    # a type in the null namespace has no other name inside a namespaced one
    for candidate in (full, name):
        if candidate in named:
            return candidate
    raise InvalidSchema(f"unknown type {name!r}")


def _full_name(name: str, namespace: str | None, enclosing: str) -> str:
    if "." in name:
        return name
    space = enclosing if namespace is None else namespace
    return f"{space}.{name}" if space else name


def _short(full_name: str) -> str:
    return full_name.rpartition(".")[2]


def _kind(node: Any) -> str:
    """The Avro type of a dereferenced, non-union node; a logical type counts as its base."""
    kind: str = node if isinstance(node, str) else node["type"]
    return "record" if kind == "error" else kind


def _decimal(node: Any) -> tuple[int, int] | None:
    """(precision, scale) of a valid decimal; None otherwise, as the spec ignores an invalid
    logical type and reads the type under it."""
    if not isinstance(node, Mapping) or node.get("logicalType") != "decimal":
        return None
    precision, scale = node.get("precision"), node.get("scale", 0)
    if not (_is_int(precision) and _is_int(scale) and precision > 0 and 0 <= scale <= precision):
        return None
    if node["type"] == "fixed":
        # the digits the largest positive value of `size` bytes has, less one
        digits = len(str(2 ** (8 * node["size"] - 1) - 1)) - 1
        return (precision, scale) if precision <= digits else None
    return (precision, scale) if node["type"] == "bytes" else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bytes(value: object) -> bool:
    """Bytes in JSON: a string whose code points 0-255 stand for the bytes."""
    return isinstance(value, str) and all(ord(char) < 256 for char in value)


@dataclass(frozen=True, slots=True)
class _Issue:
    """A reason found below the node being resolved: the fields down to it, then the steps
    ("item" of an array, "value" of a map) below the last of those fields."""

    fields: tuple[str, ...]
    steps: tuple[str, ...]
    problem: str

    @classmethod
    def here(cls, problem: str) -> _Issue:
        return cls((), (), problem)

    def under(self, field: str) -> _Issue:
        return _Issue((field, *self.fields), self.steps, self.problem)

    def inside(self, step: str) -> _Issue:
        return self if self.fields else _Issue((), (step, *self.steps), self.problem)

    def public(self) -> Incompatibility:
        subject = f"field '{self.fields[-1]}'" if self.fields else "the value"
        for step in self.steps:
            subject = f"each {step} of {subject}"
        return Incompatibility(".".join(self.fields), f"{subject} {self.problem}")


class _Resolver:
    """Walks a reader's and a writer's schema together as resolving any datum would."""

    def __init__(self, reader: _Schema, writer: _Schema) -> None:
        self._reader = reader
        self._writer = writer
        # Each pair of records (reader, writer) is walked once. Its entry is made empty before
        # its fields are walked, so a recursive reference stops there: whatever the pair has
        # is being found by the walk in progress.
        self._records: dict[tuple[str, str], tuple[_Issue, ...]] = {}

    def resolve(self, reader: Any, writer: Any) -> list[_Issue]:
        r, w = self._reader.deref(reader), self._writer.deref(writer)
        if isinstance(w, list):  # the writer may have written any of its branches
            return [issue for branch in w for issue in self.resolve(r, branch)]
        if isinstance(r, list):  # the first branch that matches is the one read, right or not
            chosen = next((branch for branch in r if self._matches(branch, w)), None)
            if chosen is not None:
                return self.resolve(chosen, w)
            return [self._mismatch(r, w, "no branch of the {reader} can read")]
        if not self._matches(r, w):
            return [self._mismatch(r, w, "cannot be read as {reader}")]
        return self._resolve_matching(r, w)

    def _resolve_matching(self, reader: Any, writer: Any) -> list[_Issue]:
        """What two matching types of the same kind (or a promotion) may still disagree on."""
        kind = _kind(reader)
        if kind in _CHILD:
            child = _CHILD[kind]
            issues = self.resolve(reader[child], writer[child])
            return [issue.inside(_ELEMENT[kind]) for issue in issues]
        if kind == "enum":
            return _enum_issues(reader, writer)
        if kind == "record":
            return self._record(reader, writer)
        return []

    def _mismatch(self, reader: Any, writer: Any, verdict: str) -> _Issue:
        written, readable = self._writer.describe(writer), self._reader.describe(reader)
        return _Issue.here(f"was written as {written}, which {verdict.format(reader=readable)}")

    def _matches(self, reader: Any, writer: Any) -> bool:
        """The specification's "match": what picks a union branch, before full resolution."""
        r, w = self._reader.deref(reader), self._writer.deref(writer)
        if isinstance(r, list) or isinstance(w, list):
            return True
        kind, written = _kind(r), _kind(w)
        if kind != written:
            return kind in _PROMOTIONS.get(written, frozenset())
        if kind in _CHILD:
            return self._matches(r[_CHILD[kind]], w[_CHILD[kind]])
        if kind in _NAMED and not _names_match(r, w):
            return False
        if kind == "fixed" and r["size"] != w["size"]:
            return False
        r_decimal, w_decimal = _decimal(r), _decimal(w)
        return r_decimal is None or w_decimal is None or r_decimal == w_decimal

    def _record(self, reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[_Issue]:
        pair = (reader["name"], writer["name"])
        if pair not in self._records:
            self._records[pair] = ()
            written = {field["name"]: field for field in writer["fields"]}
            claimed = {field["name"] for field in reader["fields"]} & written.keys()
            found: list[_Issue] = []
            for field in reader["fields"]:
                source = _source(field, written, claimed)
                issues = (
                    self._default_issues(field)
                    if source is None
                    else self.resolve(field["type"], source["type"])
                )
                found += [issue.under(field["name"]) for issue in issues]
            self._records[pair] = tuple(found)
        return list(self._records[pair])

    def _default_issues(self, field: Mapping[str, Any]) -> list[_Issue]:
        """A reader's field the writer lacks is read as its default, which must fit its type
        (a union's default, its first branch)."""
        if "default" not in field:
            return [_Issue.here("was added without a default")]
        node = self._reader.deref(field["type"])
        target = node[0] if isinstance(node, list) and node else node
        if self._fits(target, field["default"]):
            return []
        expected = self._reader.describe(target)
        if isinstance(node, list):
            expected += ", the first branch of its union"
        shown = json.dumps(field["default"])
        return [_Issue.here(f"was added with a default, {shown}, that does not fit {expected}")]

    def _fits(self, node: Any, value: Any) -> bool:  # noqa: PLR0911 -- one return per Avro type
        """Whether `value` is a default of type `node`, as the specification's table has it."""
        node = self._reader.deref(node)
        if isinstance(node, list):
            return bool(node) and self._fits(node[0], value)
        match _kind(node):
            case "null":
                return value is None
            case "boolean":
                return isinstance(value, bool)
            case ("int" | "long") as kind:
                bound = 2 ** (_INT_BITS[kind] - 1)
                return _is_int(value) and -bound <= value < bound
            case "float" | "double":
                return _is_int(value) or isinstance(value, float)
            case "string":
                return isinstance(value, str)
            case "bytes":
                return _is_bytes(value)
            case "fixed":
                return _is_bytes(value) and len(value) == node["size"]
            case "enum":
                return value in node["symbols"]
            case "array":
                return isinstance(value, list) and all(self._fits(node["items"], v) for v in value)
            case "map":
                return isinstance(value, Mapping) and all(
                    self._fits(node["values"], v) for v in value.values()
                )
            case "record":
                return isinstance(value, Mapping) and all(
                    self._fits(f["type"], value[f["name"]])
                    if f["name"] in value
                    else "default" in f and self._fits(f["type"], f["default"])
                    for f in node["fields"]
                )
        return False


def _names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    """Named types match by unqualified name, or when the reader has the writer's full name
    among its aliases (qualified against the reader's namespace when written short)."""
    return _short(reader["name"]) == _short(writer["name"]) or writer["name"] in reader["aliases"]


def _enum_issues(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[_Issue]:
    lacking = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
    if not lacking or reader.get("default") in reader["symbols"]:
        return []
    symbols = ", ".join(f"'{symbol}'" for symbol in lacking)
    return [
        _Issue.here(
            f"may hold {symbols}, which enum '{_short(reader['name'])}' lacks, "
            "and the enum has no default"
        )
    ]


def _source(
    field: Mapping[str, Any], written: Mapping[str, Mapping[str, Any]], claimed: set[str]
) -> Mapping[str, Any] | None:
    """The writer's field a reader's field reads: its namesake, else one its aliases name
    that no reader field takes by name."""
    if field["name"] in written:
        return written[field["name"]]
    for alias in field.get("aliases", ()):
        if alias in written and alias not in claimed:
            return written[alias]
    return None
