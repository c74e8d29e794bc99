"""Request fields defined once: each knows its JSON Schema (for the OpenAPI document) and how
to parse a value (for the handlers), so the document and the validation cannot drift apart.

Parsing collects every invalid field of a body before answering, and names each by its path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

from api.model.errors import FieldProblem, InvalidInput
from core.errors import InvalidField
from core.json_value import JsonValue
from core.text_bounds import text_problem
from schemas.event_data import parse_rfc3339

T = TypeVar("T")
U = TypeVar("U")
JsonSchema = dict[str, JsonValue]
Parser = Callable[[object, str], T]
"""Parses a JSON value found at a path; raises InvalidField naming the path."""

MAX_TEXT_CHARS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Kind(Generic[T]):
    """A value's JSON Schema and its parser."""

    schema: JsonSchema
    parse: Parser[T]

    def nullable(self) -> Kind[T | None]:
        inner = self.parse

        def parse(value: object, path: str) -> T | None:
            return None if value is None else inner(value, path)

        return Kind({"anyOf": [self.schema, {"type": "null"}]}, parse)

    def then(self, check: Callable[[T], U]) -> Kind[U]:
        """This kind followed by a rule from `core` (which names its own field)."""
        inner = self.parse

        def parse(value: object, path: str) -> U:
            return check(inner(value, path))

        return Kind(self.schema, parse)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _storable(value: str, path: str) -> str:
    """Every string a request carries passes here, so none reaches PostgreSQL or Kafka holding
    a character they cannot store (`core.text_bounds`)."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidField(path, problem)
    return value


def text(
    *,
    max_chars: int = MAX_TEXT_CHARS,
    min_chars: int = 0,
    enum: Sequence[str] | None = None,
    pattern: str | None = None,
) -> Kind[str]:
    schema: JsonSchema = {"type": "string", "maxLength": max_chars}
    if min_chars:
        schema["minLength"] = min_chars
    if enum is not None:
        schema = {"type": "string", "enum": list(enum)}
    if pattern is not None:
        schema["pattern"] = pattern
    compiled = None if pattern is None else re.compile(pattern)

    def parse(value: object, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidField(path, f"expected a string, got {_type_name(value)}")
        if enum is not None and value not in enum:
            raise InvalidField(path, f"expected one of {', '.join(enum)}")
        if not min_chars <= len(value) <= max_chars:
            raise InvalidField(path, f"expected {min_chars} to {max_chars} characters")
        if compiled is not None and not compiled.search(value):
            raise InvalidField(path, f"does not match the pattern {pattern}")
        return _storable(value, path)

    return Kind(schema, parse)


def boolean() -> Kind[bool]:
    def parse(value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidField(path, f"expected a boolean, got {_type_name(value)}")
        return value

    return Kind({"type": "boolean"}, parse)


def positive_number(*, maximum: float = 1e6) -> Kind[float]:
    def parse(value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidField(path, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value) or not 0 < value <= maximum:
            raise InvalidField(path, f"expected a number above 0, at most {maximum:g}")
        return float(value)

    return Kind({"type": "number", "exclusiveMinimum": 0, "maximum": maximum}, parse)


def integer(*, minimum: int, maximum: int) -> Kind[int]:
    """A whole number within bounds; `3.0` is one too, as JSON Schema's `integer` says."""

    def parse(value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidField(path, f"expected a whole number, got {_type_name(value)}")
        if isinstance(value, float) and not value.is_integer():  # also NaN and infinities
            raise InvalidField(path, "expected a whole number")
        if not minimum <= value <= maximum:
            raise InvalidField(path, f"expected a whole number from {minimum} to {maximum}")
        return int(value)

    return Kind({"type": "integer", "minimum": minimum, "maximum": maximum}, parse)


def unique(kind: Kind[tuple[T, ...]]) -> Kind[tuple[T, ...]]:
    """An array kind whose items may not repeat; a repeat is named by its index."""
    inner = kind.parse

    def parse(value: object, path: str) -> tuple[T, ...]:
        items = inner(value, path)
        for i, item in enumerate(items):
            if item in items[:i]:
                raise InvalidField(f"{path}[{i}]", "appears more than once")
        return items

    return Kind({**kind.schema, "uniqueItems": True}, parse)


def timestamp() -> Kind[datetime]:
    """An RFC 3339 date-time within `core.time_bounds`."""

    def parse(value: object, path: str) -> datetime:
        if not isinstance(value, str):
            raise InvalidField(path, f"expected an RFC 3339 date-time, got {_type_name(value)}")
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise InvalidField(path, str(exc)) from None

    return Kind({"type": "string", "format": "date-time"}, parse)


def array(item: Kind[T], *, max_items: int, min_items: int = 0) -> Kind[tuple[T, ...]]:
    def parse(value: object, path: str) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise InvalidField(path, f"expected an array, got {_type_name(value)}")
        if not min_items <= len(value) <= max_items:
            raise InvalidField(path, f"expected {min_items} to {max_items} items")
        return tuple(item.parse(v, f"{path}[{i}]") for i, v in enumerate(value))

    schema: JsonSchema = {"type": "array", "items": item.schema, "maxItems": max_items}
    if min_items:
        schema["minItems"] = min_items
    return Kind(schema, parse)


def mapping(values: Kind[T], *, max_fields: int) -> Kind[dict[str, T]]:
    def parse(value: object, path: str) -> dict[str, T]:
        if not isinstance(value, dict):
            raise InvalidField(path, f"expected an object, got {_type_name(value)}")
        if len(value) > max_fields:
            raise InvalidField(path, f"at most {max_fields} fields")
        return {_storable(str(k), path): values.parse(v, f"{path}.{k}") for k, v in value.items()}

    schema: JsonSchema = {
        "type": "object",
        "additionalProperties": values.schema,
        "maxProperties": max_fields,
    }
    return Kind(schema, parse)


@dataclass(frozen=True, slots=True)
class Field(Generic[T]):
    """A named member of a request body."""

    name: str
    kind: Kind[T]
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The valid fields of a body; `get` is typed by the field asked for."""

    values: Mapping[str, object]

    def __contains__(self, item: Field[Any]) -> bool:
        return item.name in self.values

    def get(self, item: Field[T]) -> T:
        return cast(T, self.values[item.name])

    def get_or(self, item: Field[T], default: U) -> T | U:
        return cast(T, self.values[item.name]) if item.name in self.values else default


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON object body: its fields, and whether a field outside them is refused."""

    name: str
    fields: tuple[Field[Any], ...]
    description: str = ""
    extra: dict[str, JsonSchema] = field(default_factory=dict)

    def schema(self) -> JsonSchema:
        properties: dict[str, JsonValue] = {}
        for item in self.fields:
            prop = dict(item.kind.schema)
            if item.description:
                prop["description"] = item.description
            properties[item.name] = prop
        required: list[JsonValue] = [f.name for f in self.fields if f.required]
        schema: JsonSchema = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema

    def parse(self, raw: object) -> Parsed:
        """Every field checked; InvalidInput lists each bad one, unknown ones included."""
        if not isinstance(raw, dict):
            raise InvalidInput.one("body", f"expected a JSON object, got {_type_name(raw)}")
        known = {f.name: f for f in self.fields}
        problems = [FieldProblem(str(k), "unknown field") for k in raw if k not in known]
        values: dict[str, object] = {}
        for item in self.fields:
            if item.name not in raw:
                if item.required:
                    problems.append(FieldProblem(item.name, "required field is missing"))
                continue
            try:
                values[item.name] = item.kind.parse(raw[item.name], item.name)
            except InvalidField as exc:
                problems.append(FieldProblem(exc.field, exc.reason))
        if problems:
            raise InvalidInput(problems)
        return Parsed(values)


@dataclass(frozen=True, slots=True)
class QueryParam(Generic[T]):
    """A query-string parameter: its schema, and a parser of its text."""

    name: str
    schema: JsonSchema
    parse: Callable[[str], T]
    description: str = ""

    def read(self, query: Mapping[str, str]) -> T | None:
        raw = query.get(self.name)
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except InvalidField:
            raise
        except ValueError as exc:
            raise InvalidField(self.name, str(exc)) from None


def query_text(
    name: str, *, max_chars: int = 200, enum: Sequence[str] | None = None
) -> QueryParam[str]:
    kind = text(max_chars=max_chars, min_chars=1, enum=enum)
    return QueryParam(name, kind.schema, lambda raw: kind.parse(raw, name))


def query_int(name: str, *, minimum: int, maximum: int, default: int) -> QueryParam[int]:
    def parse(raw: str) -> int:
        if not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise InvalidField(name, f"expected a whole number from {minimum} to {maximum}")
        return int(raw)

    schema: JsonSchema = {
        "type": "integer",
        "minimum": minimum,
        "maximum": maximum,
        "default": default,
    }
    return QueryParam(name, schema, parse)


def query_timestamp(name: str) -> QueryParam[datetime]:
    kind = timestamp()
    return QueryParam(name, kind.schema, lambda raw: kind.parse(raw, name))


@dataclass(frozen=True, slots=True)
class PathParam(Generic[T]):
    """A `{placeholder}` of a route's path, named in problems for what it identifies
    (`{id}` of `/v1/deliveries/{id}` is `delivery_id`), since `id` alone says nothing."""

    placeholder: str
    name: str
    kind: Kind[T]

    def read(self, match_info: Mapping[str, str]) -> T:
        return self.kind.parse(match_info[self.placeholder], self.name)
