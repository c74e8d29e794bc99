"""Event types as records on the log: the rules of a name and of a type's history of versions.

An event type is one record, keyed by its name, holding every version of its `data` schema
(oldest first): a reader always sees a type whole, and a writer that evolves it writes the
next revision of that one record. Which record wins is `newest_revision`, like a
subscription's version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from core.errors import InvalidField
from core.json_value import JsonValue
from core.matching import PLATFORM_PREFIX, is_platform_type

NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
MAX_NAME_CHARS: Final = 100
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_EXAMPLES: Final = 10
_NAME: Final = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class EventTypeVersion:
    """One version of a type's `data` schema: the Avro schema as its JSON text (as written,
    docs included), and examples that were checked against it when it was registered."""

    version: int
    schema: str
    description: str
    examples: tuple[dict[str, JsonValue], ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventTypeRecord:
    """An event type as the `event-types` topic keeps it. `revision` grows with each write;
    `builtin` marks the types hookline ships (registered from its own `.avsc` files)."""

    name: str
    description: str
    versions: tuple[EventTypeVersion, ...]
    deprecated: bool
    builtin: bool
    created_at: datetime
    updated_at: datetime
    revision: int

    @property
    def latest(self) -> EventTypeVersion:
        return self.versions[-1]

    def with_version(
        self,
        schema: str,
        *,
        description: str | None,
        examples: tuple[dict[str, JsonValue], ...],
        now: datetime,
    ) -> EventTypeRecord:
        """The next revision, holding one more version; a given description becomes the
        type's too (its latest word on what the event means)."""
        said = self.description if description is None else description
        version = EventTypeVersion(self.latest.version + 1, schema, said, examples, now)
        return replace(
            self,
            description=said,
            versions=(*self.versions, version),
            updated_at=now,
            revision=self.revision + 1,
        )

    def changed(
        self, *, description: str | None, deprecated: bool | None, now: datetime
    ) -> EventTypeRecord:
        """The next revision with the type's description or deprecated flag changed."""
        return replace(
            self,
            description=self.description if description is None else description,
            deprecated=self.deprecated if deprecated is None else deprecated,
            updated_at=now,
            revision=self.revision + 1,
        )


def new_event_type(
    name: str,
    *,
    description: str,
    schema: str,
    examples: tuple[dict[str, JsonValue], ...],
    now: datetime,
    builtin: bool = False,
) -> EventTypeRecord:
    """The first revision of a type: version 1."""
    first = EventTypeVersion(1, schema, description, examples, now)
    return EventTypeRecord(name, description, (first,), False, builtin, now, now, 1)


def newest_revision(previous: EventTypeRecord | None, record: EventTypeRecord) -> EventTypeRecord:
    """A record of an older revision than the row's is ignored (a writer that lost a race)."""
    if previous is not None and record.revision < previous.revision:
        return previous
    return record


def check_event_type_name(name: str, *, field: str = "name") -> str:
    """`noun.verb`: dot-separated parts of lowercase letters, digits and `_`, each starting
    with a letter; `webhook.*` is the platform's own."""
    if len(name) > MAX_NAME_CHARS:
        raise InvalidField(field, f"at most {MAX_NAME_CHARS} characters")
    if not _NAME.match(name):
        raise InvalidField(
            field,
            f"{name!r} is not `noun.verb`: dot-separated lowercase letters, digits and `_`,"
            " each part starting with a letter",
        )
    if is_platform_type(name):
        raise InvalidField(field, f"the {PLATFORM_PREFIX}* types are the platform's own")
    return name
