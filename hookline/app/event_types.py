"""`hookline event-types push DIR` and `list`: a service repository's event types, kept in
its own `<name>.avsc` files (and optional `<name>.examples.json`), registered or evolved.

The command writes to the `event-types` topic itself, with the rules the admin API uses
(`schemas.event_types`): no hookline command talks to a running API, and the topic is the
catalog, so a deploy step needs only the Kafka settings every command already takes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from core.errors import HooklineError, InvalidField
from core.event_types import EventTypeRecord
from core.json_value import JsonValue
from core.records import utc_ms
from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.commands import Command
from hookline.runtime.event_types import EventTypeLog, register_builtin_types
from hookline.runtime.settings import Settings
from schemas.catalog import EventCatalog
from schemas.errors import IncompatibleSchema
from schemas.event_types import new_type, next_version

CLIENT_ID: Final = "hookline-event-types"
AVSC: Final = ".avsc"
EXAMPLES: Final = ".examples.json"
READ_BACK_TIMEOUT_S: Final = 30.0


class PushRefused(HooklineError):
    """A file of the folder cannot be registered; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class Definition:
    """One type as a folder defines it."""

    name: str
    schema: JsonValue
    examples: list[JsonValue] | None


def definitions(folder: Path) -> list[Definition]:
    """Every `<name>.avsc` of `folder`, by name, with its examples file when there is one."""
    if not folder.is_dir():
        raise PushRefused(f"{folder}: not a folder")
    found = []
    for path in sorted(folder.glob(f"*{AVSC}")):
        name = path.name.removesuffix(AVSC)
        examples_path = folder / f"{name}{EXAMPLES}"
        examples = _read_json(examples_path) if examples_path.exists() else None
        if examples is not None and not isinstance(examples, list):
            raise PushRefused(f"{examples_path.name}: expected a JSON array of data objects")
        found.append(Definition(name, _read_json(path), examples))
    return found


def _read_json(path: Path) -> JsonValue:
    try:
        value: JsonValue = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PushRefused(f"{path.name}: {exc}") from None
    return value


class Catalog(Protocol):
    """What a push reads: the catalog now, and a type's topic record (`LiveCatalog`)."""

    def current(self) -> EventCatalog: ...

    def record(self, name: str) -> EventTypeRecord | None: ...


def plan(
    catalog: Catalog, definition: Definition, *, now: datetime
) -> tuple[str, EventTypeRecord | None]:
    """What pushing `definition` does: a line to print, and the record to write (None when
    the type's latest version is this schema with these examples already)."""
    current = catalog.record(definition.name)
    schema = definition.schema
    description = str(schema.get("doc", "")) if isinstance(schema, dict) else ""
    try:
        if current is None:
            record, _ = new_type(
                catalog.current(),
                name=definition.name,
                description=description,
                schema=schema,
                examples=definition.examples,
                now=now,
            )
            return "created", record
        examples = tuple(definition.examples or ())
        if json.loads(current.latest.schema) == schema and current.latest.examples == examples:
            return "unchanged", None
        record, _ = next_version(
            current, schema=schema, description=description, examples=definition.examples, now=now
        )
    except InvalidField as exc:
        raise PushRefused(f"{definition.name}{AVSC}: {exc.field}: {exc.reason}") from None
    except IncompatibleSchema as exc:
        first = exc.problems[0]
        raise PushRefused(
            f"{definition.name}{AVSC}: not backward compatible:"
            f" field {first.path or '(record)'}: {first.reason}"
        ) from None
    return f"new version {record.latest.version}", record


def push(runtime: CodecRuntime, writer: EventTypeLog, folder: Path) -> Iterator[str]:
    """Register or evolve every type of `folder`, in name order; yields one line per type.
    A refused type stops the push there (the ones before it are written)."""
    catalog = runtime.catalog
    assert catalog is not None
    for definition in definitions(folder):
        line, record = plan(catalog, definition, now=utc_ms(datetime.now(UTC)))
        if record is not None:
            writer.put(record)
            if not catalog.table.wait_for(
                record.name, revision=record.revision, timeout_s=READ_BACK_TIMEOUT_S
            ):
                raise PushRefused(f"{record.name}: written, but not read back in time")
        yield f"{definition.name}: {line}"


def _open(settings: Settings) -> tuple[CodecRuntime, EventTypeLog]:
    settings.require("kafka_bootstrap")
    runtime = open_codec(settings, client_id=CLIENT_ID, follow_catalog=True)
    return runtime, EventTypeLog(settings, runtime.codec, runtime.registry, client_id=CLIENT_ID)


def register_builtins_command(settings: Settings) -> list[str]:
    """The shipped types the topic lacks, written as version 1 (`hookline topics ensure`)."""
    runtime, writer = _open(settings)
    try:
        assert runtime.catalog is not None
        return register_builtin_types(runtime.catalog.table, writer)
    finally:
        writer.close()
        runtime.close()


def event_types_command(args: argparse.Namespace, settings: Settings) -> int:
    runtime, writer = _open(settings)
    try:
        if args.action == "list":
            assert runtime.catalog is not None
            for entry in runtime.catalog.current().entries():
                flag = "  (deprecated)" if entry.deprecated else ""
                print(f"{entry.name}  v{entry.version}{flag}  {entry.doc}")
            return 0
        if args.folder is None:
            raise PushRefused("push needs a folder: hookline event-types push DIR")
        for line in push(runtime, writer, Path(args.folder)):
            print(line, flush=True)
        return 0
    finally:
        writer.close()
        runtime.close()


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["push", "list"])
    parser.add_argument(
        "folder", nargs="?", help="push: the folder of <name>.avsc (+ <name>.examples.json)"
    )


COMMANDS = (
    Command(
        "event-types",
        "register or evolve the event types of a folder of .avsc files; list the catalog",
        event_types_command,
        _flags,
    ),
)
