"""The event-type catalog and the internal record schemas.

The record schemas and the built-in event types come from the `.avsc` files in this
package, read with importlib.resources when a process builds them (never at import); a
built-in type's name is its file name in `events/`. Every other type, and every later
version of a built-in, is a record of the `event-types` topic: `catalog_of` folds them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Protocol

from core.event_types import EventTypeRecord, new_event_type
from core.json_value import JsonValue
from schemas.codec import AvroSchema, SchemaDefinition
from schemas.errors import InvalidSchema, UnknownEventType

log = logging.getLogger(__name__)

_PACKAGE = "schemas"
_AVSC = ".avsc"


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of a type's `data` schema, with its JSON Schema and examples."""

    version: int
    doc: str
    schema: AvroSchema
    json_schema: Mapping[str, JsonValue]
    examples: tuple[dict[str, JsonValue], ...] = ()
    created_at: datetime | None = None

    @property
    def avro(self) -> JsonValue:
        """The Avro schema of the type's `data`, as it was written."""
        definition: JsonValue = self.schema.definition
        return definition


@dataclass(frozen=True, slots=True)
class EventType:
    """One entry of the catalog, as `/v1/event-types` and the docs show it: every version,
    oldest first; events are validated and written with the latest."""

    name: str
    doc: str
    versions: tuple[SchemaVersion, ...]
    deprecated: bool = False
    builtin: bool = False

    @property
    def latest(self) -> SchemaVersion:
        return self.versions[-1]

    @property
    def version(self) -> int:
        return self.latest.version

    @property
    def schema(self) -> AvroSchema:
        return self.latest.schema

    @property
    def json_schema(self) -> Mapping[str, JsonValue]:
        return self.latest.json_schema

    @property
    def avro(self) -> JsonValue:
        return self.latest.avro


@dataclass(frozen=True, slots=True)
class EventCatalog:
    """The domain event types hookline knows, by name."""

    types: Mapping[str, EventType]
    _by_fingerprint: Mapping[bytes, AvroSchema] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        versions = (v.schema for t in self.types.values() for v in t.versions)
        object.__setattr__(self, "_by_fingerprint", {s.fingerprint: s for s in versions})

    def writer(self, fingerprint: bytes) -> AvroSchema | None:
        """The version of any type written with this fingerprint, as it was registered
        (logical types included), if this catalog holds it."""
        return self._by_fingerprint.get(fingerprint)

    def current(self) -> EventCatalog:
        """A fixed catalog is its own `CatalogSource`."""
        return self

    def refresh(self) -> EventCatalog:
        return self

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.types))

    def entries(self) -> tuple[EventType, ...]:
        return tuple(self.types[name] for name in self.names())

    def __contains__(self, event_type: object) -> bool:
        return event_type in self.types

    def get(self, event_type: str) -> AvroSchema | None:
        entry = self.types.get(event_type)
        return None if entry is None else entry.schema

    def schema(self, event_type: str) -> AvroSchema:
        """The schema of the type's `data` (its latest version); `UnknownEventType` when
        there is none."""
        entry = self.types.get(event_type)
        if entry is None:
            raise UnknownEventType(event_type)
        return entry.schema


class CatalogSource(Protocol):
    """Where a process finds the catalog as of now: a fixed `EventCatalog`, or one that
    follows the `event-types` topic (`hookline.runtime.event_types.LiveCatalog`)."""

    def current(self) -> EventCatalog: ...

    def refresh(self) -> EventCatalog:
        """The catalog once every type registered before now is known: asked when a type
        is not found, before the caller is told it does not exist."""
        ...


@dataclass(frozen=True, slots=True)
class RecordSchemas:
    """The schemas of the internal records, one per topic value type."""

    event: AvroSchema
    subscription: AvroSchema
    delivery_command: AvroSchema
    delivery_attempt: AvroSchema
    dead_letter: AvroSchema
    job: AvroSchema
    token: AvroSchema
    event_type: AvroSchema

    def all(self) -> tuple[AvroSchema, ...]:
        return (
            self.event,
            self.subscription,
            self.delivery_command,
            self.delivery_attempt,
            self.dead_letter,
            self.job,
            self.token,
            self.event_type,
        )


def load_catalog() -> EventCatalog:
    """Read every `events/<type>.avsc` shipped with the package."""
    types: dict[str, EventType] = {}
    for resource in sorted(_avsc_files(files(_PACKAGE) / "events"), key=lambda r: r.name):
        name = resource.name.removesuffix(_AVSC)
        definition = _read_json(resource)
        if not isinstance(definition, dict) or definition.get("type") != "record":
            raise InvalidSchema(f"events/{resource.name}: the data of an event is a record")
        doc = str(definition.get("doc", ""))
        version = SchemaVersion(1, doc, AvroSchema.parse(definition), describe(definition))
        types[name] = EventType(name, doc, (version,), builtin=True)
    return EventCatalog(types)


def catalog_of(records: Iterable[EventTypeRecord], *, defaults: EventCatalog) -> EventCatalog:
    """The catalog the `event-types` topic's records make, over the shipped types as
    defaults (a process never depends on the built-ins having been registered). Folding the
    same records gives the same catalog, whichever process does it."""
    types = dict(defaults.types)
    for record in records:
        try:
            types[record.name] = event_type_of(record)
        except InvalidSchema as exc:  # the API checks every schema; only a foreign writer
            log.error("event type %r skipped: %s", record.name, exc)  # noqa: TRY400
    return EventCatalog(types)


def event_type_of(record: EventTypeRecord) -> EventType:
    """A topic record as a catalog entry, every version's schema parsed."""
    versions = tuple(
        SchemaVersion(
            v.version,
            v.description,
            schema := AvroSchema.from_json(v.schema),
            describe(schema.definition),
            v.examples,
            v.created_at,
        )
        for v in record.versions
    )
    return EventType(record.name, record.description, versions, record.deprecated, record.builtin)


def builtin_record(entry: EventType, *, now: datetime) -> EventTypeRecord:
    """A shipped type as version 1 of its topic record."""
    return new_event_type(
        entry.name,
        description=entry.doc,
        schema=json.dumps(entry.avro),
        examples=entry.latest.examples,
        now=now,
        builtin=True,
    )


def load_record_schemas() -> RecordSchemas:
    """Read the internal record schemas, inlining named types defined in sibling files."""
    root = files(_PACKAGE)
    command = _read_json(root / "delivery_command.avsc")
    shared = {"dev.hookline.DeliveryCommand": command}

    def load(file_name: str) -> AvroSchema:
        return AvroSchema.parse(inline_named_types(_read_json(root / file_name), shared))

    return RecordSchemas(
        event=load("envelope.avsc"),
        subscription=load("subscription.avsc"),
        delivery_command=AvroSchema.parse(command),
        delivery_attempt=load("delivery_attempt.avsc"),
        dead_letter=load("dead_letter.avsc"),
        job=load("job.avsc"),
        token=load("token.avsc"),
        event_type=load("event_type.avsc"),
    )


def inline_named_types(
    definition: SchemaDefinition, shared: Mapping[str, SchemaDefinition]
) -> SchemaDefinition:
    """Replace the first reference to each shared named type by its full definition.

    Each named type is written in one file; a schema that uses it refers to it by full name,
    and the copy published to the registry is self-contained, as Avro requires.
    """
    seen: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in shared and node not in seen:
                seen.add(node)
                return walk(json.loads(json.dumps(shared[node])))
            return node
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            if "name" in node and node.get("type") in ("record", "enum", "fixed"):
                seen.add(_full_name(node))
            out = dict(node)
            for key in ("type", "items", "values"):
                if key in out:
                    out[key] = walk(out[key])
            if "fields" in out:
                out["fields"] = [{**f, "type": walk(f["type"])} for f in out["fields"]]
            return out
        return node

    result: SchemaDefinition = walk(definition)
    return result


def describe(definition: SchemaDefinition) -> dict[str, JsonValue]:
    """A JSON Schema (2020-12 subset) of the JSON form of an Avro schema's values."""
    return _describe(definition, {})


def _describe(node: Any, named: dict[str, Any]) -> dict[str, JsonValue]:  # noqa: PLR0911 -- one return per Avro type
    if isinstance(node, list):
        return _describe_union(node, named)
    if isinstance(node, str):
        if node in named:
            return _describe(named[node], named)
        return _primitive(node)
    kind = node.get("type")
    logical = node.get("logicalType")
    doc = {"description": node["doc"]} if "doc" in node else {}
    if kind == "record":
        named[node["name"]] = node
        props = {
            f["name"]: {**_describe(f["type"], named), **_field_doc(f)} for f in node["fields"]
        }
        required: list[JsonValue] = [f["name"] for f in node["fields"] if "default" not in f]
        return {
            "type": "object",
            **doc,
            "properties": dict(props),
            "required": required,
            "additionalProperties": False,
        }
    if kind == "array":
        return {"type": "array", "items": _describe(node["items"], named)}
    if kind == "map":
        return {"type": "object", "additionalProperties": _describe(node["values"], named)}
    if kind == "enum":
        named[node["name"]] = node
        return {"type": "string", **doc, "enum": list(node["symbols"])}
    if logical in ("timestamp-millis", "timestamp-micros"):
        return {"type": "string", "format": "date-time"}
    if logical == "uuid":
        return {"type": "string", "format": "uuid"}
    return _describe(kind, named)


def _describe_union(branches: list[Any], named: dict[str, Any]) -> dict[str, JsonValue]:
    options = [_describe(branch, named) for branch in branches]
    simple = [o for o in options if set(o) <= {"type"} and isinstance(o.get("type"), str)]
    if len(simple) == len(options):
        return {"type": [o["type"] for o in simple]}
    return {"anyOf": list(options)}


def _field_doc(field: Mapping[str, Any]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    if "doc" in field:
        out["description"] = field["doc"]
    if "default" in field:
        out["default"] = field["default"]
    return out


_PRIMITIVES: dict[str, JsonValue] = {
    "null": "null",
    "boolean": "boolean",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "string": "string",
    "bytes": "string",
}


def _primitive(name: str) -> dict[str, JsonValue]:
    if name not in _PRIMITIVES:
        raise InvalidSchema(f"unknown type {name!r}")
    return {"type": _PRIMITIVES[name]}


def _full_name(node: Mapping[str, Any]) -> str:
    name = str(node["name"])
    namespace = node.get("namespace")
    return f"{namespace}.{name}" if namespace and "." not in name else name


def _avsc_files(folder: Traversable) -> Iterator[Traversable]:
    return (item for item in folder.iterdir() if item.name.endswith(_AVSC) and item.is_file())


def _read_json(resource: Traversable) -> SchemaDefinition:
    try:
        definition = json.loads(resource.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidSchema(f"{resource.name}: {exc}") from exc
    if not isinstance(definition, dict):
        raise InvalidSchema(f"{resource.name}: expected a JSON object")
    return definition
