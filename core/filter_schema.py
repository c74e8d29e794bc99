"""Whether a filter fits the event types its subscription takes, checked when it is written.

Each test's path must lead to a field of at least one of those types (a subscription to
`task.*` may test a field only `task.assigned` has: on the other types that test sees a
missing field), and each value it compares with must be of a kind that field holds there:
`"5"` never equals a number, and `$gt` orders numbers with numbers and strings with strings
(by code point, so RFC 3339 times in UTC order as times). The types come as the JSON Schemas
of their `data`, as the catalog describes them, so this rule stays free of the catalog's
storage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from core.errors import InvalidField
from core.filters import LISTS, ORDERING, AllOf, AnyOf, Condition, Filter, FilterValue, PathTest
from core.json_value import JsonValue
from core.matching import pattern_matches

JsonSchema = Mapping[str, JsonValue]
_ANY_KIND: Final = frozenset({"string", "number", "boolean", "null", "array", "object"})
_REF: Final[JsonSchema] = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
}


def check_filter_fits(
    value: Filter, event_types: Sequence[str], schemas: Mapping[str, JsonSchema]
) -> None:
    """Raise `InvalidField` naming the first test (`filter.data.amount.$gte`) that no event
    type matching `event_types` could satisfy; `schemas` is each type's `data` schema."""
    roots = [
        _envelope(schema)
        for name, schema in schemas.items()
        if any(pattern_matches(p, name) for p in event_types)
    ]
    for test in _tests(value.condition):
        kinds: set[str] = set()
        for root in roots:
            kinds.update(_kinds_at(root, test.path))
        shown = ".".join(test.path)
        if not kinds:
            raise InvalidField(test.at, f"no event type of the subscription has a field {shown!r}")
        _check_operand(test, frozenset(kinds), shown)


def _check_operand(test: PathTest, kinds: frozenset[str], shown: str) -> None:
    holds = ", ".join(sorted(kinds))
    operands = test.operand if isinstance(test.operand, tuple) else (test.operand,)
    if test.operator in ORDERING:
        if _kind(operands[0]) not in kinds:
            raise InvalidField(
                test.at,
                f"{test.operator} orders numbers with numbers and strings with strings;"
                f" {shown} holds {holds}",
            )
    elif test.operator != "$exists":
        for index, operand in enumerate(operands):
            kind = _kind(operand)
            if kind not in kinds:
                at = f"{test.at}[{index}]" if test.operator in LISTS else test.at
                raise InvalidField(at, f"{shown} holds {holds}, never {kind}")


def _kind(value: FilterValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _tests(condition: Condition) -> Iterator[PathTest]:
    match condition:
        case PathTest():
            yield condition
        case AllOf(conditions) | AnyOf(conditions):
            for part in conditions:
                yield from _tests(part)


def _envelope(data: JsonSchema) -> JsonSchema:
    """The part of an event a filter reads, as one schema: what its paths start from."""
    return {
        "type": "object",
        "properties": {
            "data": dict(data),
            "subject": dict(_REF),
            "actor": {"anyOf": [dict(_REF), {"type": "null"}]},
        },
    }


def _branches(schema: JsonSchema) -> Iterator[JsonSchema]:
    """The alternatives a schema allows (`anyOf` / `oneOf` flattened)."""
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list):
        for option in options:
            if isinstance(option, Mapping):
                yield from _branches(option)
    else:
        yield schema


def _kinds(schema: JsonSchema) -> frozenset[str]:
    """The JSON kinds a schema allows; a schema that does not say allows any."""
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else declared
    if isinstance(names, list):
        return frozenset("number" if n == "integer" else str(n) for n in names)
    if isinstance(schema.get("enum"), list):
        return frozenset(_kind(v) for v in schema["enum"])  # type: ignore[arg-type, union-attr]
    return _ANY_KIND


def _kinds_at(root: JsonSchema, path: tuple[str, ...]) -> frozenset[str]:
    """The kinds the value at `path` can have; empty when no branch has that path."""
    nodes = [root]
    for name in path:
        inner: list[JsonSchema] = []
        for node in (b for n in nodes for b in _branches(n)):
            if "object" not in _kinds(node):
                continue
            properties = node.get("properties")
            extra = node.get("additionalProperties")
            if isinstance(properties, Mapping) and isinstance(properties.get(name), Mapping):
                inner.append(properties[name])  # type: ignore[arg-type]
            elif isinstance(extra, Mapping):
                inner.append(extra)
            elif extra is True or (extra is None and not isinstance(properties, Mapping)):
                inner.append({})
        nodes = inner
    return frozenset(k for n in nodes for b in _branches(n) for k in _kinds(b))
