"""Checks an event's `data` against its type's schema, and turns decoded data back into JSON.

`validate` takes what a producer or the API hands over (JSON values, or datetimes where the
schema has a timestamp) and returns the value fastavro writes, or raises `InvalidEventData`
naming the exact field (`title`, `attendee_ids[1]`). `to_json` is the way back for webhook
bodies: timestamps become RFC 3339 strings with millisecond precision.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.json_value import JsonValue
from core.records import utc_ms
from core.time_bounds import bounded_utc
from schemas.codec import AvroRecord, AvroSchema
from schemas.errors import InvalidEventData

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TIMESTAMPS = frozenset({"timestamp-millis", "timestamp-micros"})


def format_rfc3339(moment: datetime) -> str:
    """`2024-05-01T12:00:00.000Z`: UTC, milliseconds, a `Z` suffix."""
    return utc_ms(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time with an offset, as an aware UTC datetime within
    `core.time_bounds`; otherwise ValueError, whose message is the reason to show."""
    if "T" not in text.upper():
        raise ValueError("not an RFC 3339 date-time: expected one such as 2024-05-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 date-time: {exc}") from None
    if moment.tzinfo is None:
        raise ValueError("not an RFC 3339 date-time: it needs an offset or Z")
    return bounded_utc(moment)


def validate(schema: AvroSchema, data: object, *, event_type: str) -> AvroRecord:
    """`data` as fastavro writes it with `schema`, or `InvalidEventData` naming the field."""
    checker = _Checker(event_type)
    value = checker.check(schema.definition, data, "")
    if not isinstance(value, dict):
        raise InvalidEventData(event_type, "data", "expected an object")
    return value


def to_json(value: object) -> JsonValue:  # noqa: PLR0911 -- one return per type reads clearer than a dispatch table
    """A decoded Avro value as JSON: datetimes as RFC 3339, UUIDs as text, bytes as base64."""
    match value:
        case None | bool() | int() | float() | str():
            return value
        case datetime():
            return format_rfc3339(value)
        case date():
            return value.isoformat()
        case uuid.UUID() | Decimal():
            return str(value)
        case bytes():
            return base64.b64encode(value).decode("ascii")
        case Mapping():
            return {str(k): to_json(v) for k, v in value.items()}
        case list() | tuple():
            return [to_json(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),  # before int: a bool is an int to isinstance
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (Mapping, "object"),
    ((list, tuple), "array"),
)


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    return next((name for t, name in _KINDS if isinstance(value, t)), type(value).__name__)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Checker:
    """One validation run: remembers named types as they are defined, for later references."""

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        self.named: dict[str, Any] = {}

    def fail(self, path: str, reason: str) -> InvalidEventData:
        return InvalidEventData(self.event_type, path or "data", reason)

    def expect(self, path: str, wanted: str, value: object) -> InvalidEventData:
        return self.fail(path, f"expected {wanted}, got {_kind(value)}")

    def check(self, node: Any, value: object, path: str) -> object:  # noqa: PLR0911 -- one return per type reads clearer than a dispatch table
        if isinstance(node, list):
            return self.union(node, value, path)
        if isinstance(node, str):
            if node in self.named:
                return self.check(self.named[node], value, path)
            return self.primitive(node, None, value, path)
        kind = node["type"]
        if kind == "record":
            return self.record(node, value, path)
        if kind == "array":
            if not isinstance(value, list | tuple):
                raise self.expect(path, "an array", value)
            return [self.check(node["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, Mapping):
                raise self.expect(path, "an object", value)
            return {
                str(k): self.check(node["values"], v, _join(path, str(k))) for k, v in value.items()
            }
        if kind == "enum":
            self.named[self.full_name(node)] = node
            if not isinstance(value, str) or value not in node["symbols"]:
                raise self.fail(path, f"expected one of {', '.join(node['symbols'])}")
            return value
        return self.primitive(kind, node.get("logicalType"), value, path)

    def full_name(self, node: Mapping[str, Any]) -> str:
        name = str(node["name"])
        self.named[name] = node
        namespace = node.get("namespace")
        return f"{namespace}.{name}" if namespace and "." not in name else name

    def record(self, node: Mapping[str, Any], value: object, path: str) -> dict[str, object]:
        self.named[self.full_name(node)] = node
        if not isinstance(value, Mapping):
            raise self.expect(path, "an object", value)
        fields = {f["name"]: f for f in node["fields"]}
        for key in value:
            if key not in fields:
                raise self.fail(_join(path, str(key)), "unknown field")
        out: dict[str, object] = {}
        for name, field in fields.items():
            where = _join(path, name)
            if name in value:
                out[name] = self.check(field["type"], value[name], where)
            elif "default" in field:
                out[name] = copy.deepcopy(field["default"])
            else:
                raise self.fail(where, "required field is missing")
        return out

    def union(self, branches: Sequence[Any], value: object, path: str) -> object:
        if value is None and "null" in branches:
            return None
        candidates = [b for b in branches if b != "null"]
        first_error: InvalidEventData | None = None
        for branch in candidates:
            try:
                return self.check(branch, value, path)
            except InvalidEventData as exc:
                first_error = first_error or exc
        if len(candidates) == 1 and first_error is not None:
            raise first_error
        raise self.fail(path, f"{_kind(value)} matches none of the allowed types")

    def primitive(  # noqa: PLR0911 -- one return per Avro type
        self, kind: str, logical: str | None, value: object, path: str
    ) -> object:
        if logical in _TIMESTAMPS:
            return self.timestamp(value, path)
        match kind:
            case "null":
                if value is not None:
                    raise self.expect(path, "null", value)
                return None
            case "boolean":
                if not isinstance(value, bool):
                    raise self.expect(path, "a boolean", value)
                return value
            case "int" | "long":
                return self.integer(kind, value, path)
            case "float" | "double":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise self.expect(path, "a number", value)
                if not math.isfinite(value):
                    raise self.fail(path, "expected a finite number")
                return float(value)
            case "string":
                if not isinstance(value, str):
                    raise self.expect(path, "a string", value)
                return self.uuid(value, path) if logical == "uuid" else value
            case "bytes":
                return self.bytes(value, path)
        raise self.fail(path, f"unsupported schema type {kind!r}")

    def integer(self, kind: str, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.expect(path, "an integer", value)
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            raise self.fail(path, f"{value} is out of range for {kind}")
        return value

    def timestamp(self, value: object, path: str) -> datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.fail(path, "a datetime needs a timezone")
            try:
                return bounded_utc(value)
            except ValueError as exc:
                raise self.fail(path, str(exc)) from None
        if not isinstance(value, str):
            raise self.expect(path, "an RFC 3339 date-time string", value)
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def uuid(self, value: str, path: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise self.fail(path, "not a UUID") from None

    def bytes(self, value: object, path: str) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise self.fail(path, "expected base64 text") from None
        raise self.expect(path, "base64 text", value)
