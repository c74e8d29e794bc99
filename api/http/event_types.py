"""Handlers of `/v1/event-types`: the catalog for every token, changes for the admin only.

A change writes the type's next revision to the compacted `event-types` topic (acks=all),
after the new version's schema is on the schemas topic, and answers once the API's own
table has read it back: every process following the catalog sees it moments later.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from api.http.context import (
    READ_BACK_TIMEOUT_S,
    Resources,
    answer,
    bodies,
    caller,
    event_type_lock,
    read_json,
    resources,
    settings,
)
from api.http.views import event_type_versions_view, event_type_view
from api.model.errors import Conflict, FieldProblem, Forbidden, Incompatible, NotFound, Unavailable
from core.event_types import EventTypeRecord
from core.matching import PLATFORM_PREFIX, is_platform_type
from core.records import utc_ms
from hookline.runtime.event_types import LiveCatalog, missing_builtins
from hookline.runtime.settings import Settings
from schemas.catalog import EventType, event_type_of
from schemas.codec import AvroSchema
from schemas.errors import EventTypeExists, IncompatibleSchema
from schemas.event_types import new_type, next_version

KIND: Final = "event type"


def _now() -> datetime:
    return utc_ms(datetime.now(UTC))


def _live(request: web.Request) -> LiveCatalog:
    live = resources(request).codec.catalog
    assert live is not None, "the API's codec follows the catalog"
    return live


def _entry(request: web.Request) -> EventType:
    name = request.match_info["name"]
    entry = _live(request).current().types.get(name)
    if entry is None:
        raise NotFound(KIND, name)
    return entry


async def _write(
    res: Resources, settings: Settings, record: EventTypeRecord, schemas: list[AvroSchema]
) -> None:
    """Register `schemas` (readers must resolve the version before any event uses it),
    write the record, and wait until the API's table holds it."""
    for schema in schemas:
        await asyncio.to_thread(res.codec.registry.register, schema)
    value = res.codec.codec.encode_event_type(record)
    await res.producer.send(settings.topic("event-types"), key=record.name, value=value)
    seen = await asyncio.to_thread(
        res.event_types.wait_for,
        record.name,
        revision=record.revision,
        timeout_s=READ_BACK_TIMEOUT_S,
    )
    if not seen:
        raise Unavailable(f"event type {record.name}: written, but not read back in time")


async def list_all(request: web.Request) -> web.Response:
    await caller(request)
    catalog = _live(request).current()
    return answer({"data": [event_type_view(e) for e in catalog.entries()]})


async def read(request: web.Request) -> web.Response:
    await caller(request)
    return answer(event_type_versions_view(_entry(request)))


async def create(request: web.Request) -> web.Response:
    (await caller(request)).require_admin()
    spec = bodies(request).event_type
    parsed = bodies(request).create_event_type.parse(await read_json(request))
    name = parsed.get(spec.name)
    async with event_type_lock(request, name):
        try:
            record, schema = new_type(
                _live(request).current(),
                name=name,
                description=parsed.get(spec.description),
                schema=parsed.get(spec.schema),
                examples=parsed.get_or(spec.examples, None),
                now=_now(),
            )
        except EventTypeExists as exc:
            raise Conflict(str(exc)) from None
        await _write(resources(request), settings(request), record, [schema])
    return answer(event_type_versions_view(event_type_of(record)), status=201)


def _changeable(request: web.Request) -> EventTypeRecord:
    """The path's type as its topic record; the platform's own types are not the admin's
    to change (403), since the platform writes their events itself."""
    name = request.match_info["name"]
    if is_platform_type(name):
        raise Forbidden(f"the {PLATFORM_PREFIX}* types are the platform's own")
    record = _live(request).record(name)
    if record is None:
        raise NotFound(KIND, name)
    return record


async def add_version(request: web.Request) -> web.Response:
    (await caller(request)).require_admin()
    spec = bodies(request).event_type
    parsed = bodies(request).new_event_type_version.parse(await read_json(request))
    async with event_type_lock(request, request.match_info["name"]):
        current = _changeable(request)
        try:
            record, schema = next_version(
                current,
                schema=parsed.get(spec.schema),
                description=parsed.get_or(spec.description, None),
                examples=parsed.get_or(spec.examples, None),
                now=_now(),
            )
        except IncompatibleSchema as exc:
            problems = [FieldProblem(p.path, p.reason) for p in exc.problems]
            raise Incompatible(current.name, problems) from None
        await _write(resources(request), settings(request), record, [schema])
    return answer(event_type_versions_view(event_type_of(record)), status=201)


async def update(request: web.Request) -> web.Response:
    (await caller(request)).require_admin()
    spec = bodies(request).event_type
    parsed = bodies(request).update_event_type.parse(await read_json(request))
    async with event_type_lock(request, request.match_info["name"]):
        current = _changeable(request)
        record = current.changed(
            description=parsed.get_or(spec.description, None),
            deprecated=parsed.get_or(spec.deprecated, None),
            now=_now(),
        )
        await _write(resources(request), settings(request), record, [])
    return answer(event_type_versions_view(event_type_of(record)))


async def register_builtins(res: Resources, settings: Settings) -> list[str]:
    """Write the shipped types the topic lacks as version 1 (at start: idempotent)."""
    written = []
    for record in missing_builtins(res.event_types, now=_now()):
        await _write(res, settings, record, [])
        written.append(record.name)
    return written
