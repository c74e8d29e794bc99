"""Handlers of `/v1/subscriptions`: create, list, read, update, delete, secrets and ping.

Every write goes to the compacted topic (acks=all) and answers only once the API's own
subscriptions table has read it back, so an event published next is routed by it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from aiohttp import web

from api.http.context import (
    READ_BACK_TIMEOUT_S,
    active_subscription,
    answer,
    bodies,
    caller,
    changing,
    counting,
    read_json,
    read_query,
    resources,
    settings,
    visible_subscription,
)
from api.http.deliveries import write_job
from api.http.fields import Parsed
from api.http.quotas import ensure_within_quotas
from api.http.views import subscription_view
from api.model.errors import ApiError, Unavailable
from api.model.jobs import new_job
from core.commands import event_body, new_command
from core.cursors import decode_cursor, encode_cursor
from core.filter_schema import check_filter_fits
from core.filters import EMPTY_FILTER, Filter
from core.records import DomainEvent, Ref, StoredSecret, Subscription, utc_ms
from core.secret_rotation import DEFAULT_OVERLAP, rotated
from core.secretbox import SecretBox
from core.signing import generate_secret
from core.subscription_status import held_by_pause, with_status
from core.webhook import CONTENT_TYPE

PING: Final = "webhook.ping"


def _now() -> datetime:
    return utc_ms(datetime.now(UTC))


async def _write(request: web.Request, sub: Subscription | None, subscription_id: str) -> None:
    """Put (or tombstone, when `sub` is None) with acks=all, then wait until the API's table
    has read it back."""
    res = resources(request)
    value = None if sub is None else res.codec.codec.encode_subscription(sub)
    await res.producer.send(
        settings(request).topic("subscriptions"), key=subscription_id, value=value
    )
    version = None if sub is None else sub.version
    seen = await res.read_back.wait(
        res.subscriptions, subscription_id, version=version, timeout_s=READ_BACK_TIMEOUT_S
    )
    if not seen:
        raise Unavailable(f"subscription {subscription_id}: written, but not read back in time")


def _check_filter(request: web.Request, sub: Subscription) -> None:
    """The filter against the schemas of the event types the subscription takes, as the
    catalog has them now (422 naming the test that no such type could satisfy)."""
    catalog = resources(request).codec.codec.catalog
    schemas = {entry.name: entry.json_schema for entry in catalog.entries()}
    check_filter_fits(sub.filter, sub.event_types, schemas)


def _sealed(box: SecretBox, subscription_id: str, headers: Mapping[str, str]) -> dict[str, bytes]:
    """Custom header values as stored on the topic: sealed like the signing secrets."""
    return {
        name: box.seal_header(value, subscription_id=subscription_id, name=name)
        for name, value in headers.items()
    }


def _current_secret(request: web.Request, sub: Subscription) -> str:
    box = resources(request).secrets
    current = next((s for s in sub.secrets if s.expires_at is None), None)
    if current is None:
        raise ApiError(f"subscription {sub.id} has no current secret")
    return box.open(current.ciphertext, subscription_id=sub.id)


async def create(request: web.Request) -> web.Response:
    who = await caller(request)
    spec = bodies(request)
    parsed = spec.create_subscription.parse(await read_json(request))
    tenant = who.tenant_for_write(parsed.get_or(spec.sub.tenant, None))
    subscription_id = str(uuid.uuid4())
    secret = generate_secret()
    now = _now()
    filter_: Filter = parsed.get_or(spec.sub.filter, EMPTY_FILTER)
    headers: dict[str, str] = parsed.get_or(spec.sub.headers, {})
    box = resources(request).secrets
    sub = Subscription(
        id=subscription_id,
        tenant=tenant,
        url=parsed.get(spec.sub.url),
        event_types=parsed.get(spec.sub.event_types),
        filter=filter_,
        description=parsed.get_or(spec.sub.description, ""),
        sealed_headers=_sealed(box, subscription_id, headers),
        rate_limit=parsed.get_or(spec.sub.rate_limit, None),
        ordered=parsed.get_or(spec.sub.ordered, False),
        content_type=parsed.get_or(spec.sub.content_type, CONTENT_TYPE),  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        version=1,
        secrets=(StoredSecret(box.seal(secret, subscription_id=subscription_id), None),),
    )
    sub = with_status(sub, parsed.get_or(spec.sub.status, "active"), now=now)
    _check_filter(request, sub)
    async with counting(request, tenant):
        ensure_within_quotas(
            settings(request), resources(request).subscriptions, sub, headers=headers
        )
        await _write(request, sub, subscription_id)
    return answer(subscription_view(sub, secret=secret), status=201)


def _sort_key(sub: Subscription) -> tuple[str, str]:
    return (sub.created_at.isoformat(), sub.id)


async def list_all(request: web.Request) -> web.Response:
    who = await caller(request)
    spec = bodies(request)
    query = read_query(request, (spec.limit, spec.cursor))
    limit = int(query.get("limit", 50))  # type: ignore[call-overload]
    after: tuple[str, ...] | None = None
    if "cursor" in query:
        after = decode_cursor(str(query["cursor"]), arity=2)
    rows = sorted(
        (s for s in resources(request).subscriptions.snapshot().values() if who.can_see(s.tenant)),
        key=_sort_key,
    )
    if after is not None:
        rows = [s for s in rows if _sort_key(s) > after]
    page = rows[:limit]
    next_cursor = encode_cursor(_sort_key(page[-1])) if len(rows) > limit else None
    return answer({"data": [subscription_view(s) for s in page], "next_cursor": next_cursor})


async def read(request: web.Request) -> web.Response:
    who = await caller(request)
    return answer(subscription_view(visible_subscription(request, who)))


async def update(request: web.Request) -> web.Response:
    who = await caller(request)
    visible_subscription(request, who)
    spec = bodies(request)
    parsed = spec.update_subscription.parse(await read_json(request))
    async with changing(request, who) as sub:
        return await _update(request, sub, parsed)


async def _update(request: web.Request, sub: Subscription, parsed: Parsed) -> web.Response:
    spec = bodies(request)
    changes = {
        item.name: parsed.get(item) for item in spec.update_subscription.fields if item in parsed
    }
    headers: dict[str, str] | None = changes.pop("headers", None)
    status = changes.pop("status", sub.status)
    box = resources(request).secrets
    if headers is not None:
        changes["sealed_headers"] = _sealed(box, sub.id, headers)
    elif sub.headers:  # clear values of a record written before they were sealed
        changes["sealed_headers"] = {**sub.sealed_headers, **_sealed(box, sub.id, sub.headers)}
    now = _now()
    updated = with_status(
        dataclasses.replace(sub, **changes, headers={}, updated_at=now, version=sub.version + 1),
        status,
        now=now,
    )
    if "filter" in changes or "event_types" in changes:
        _check_filter(request, updated)
    async with counting(request, sub.tenant):
        ensure_within_quotas(
            settings(request),
            resources(request).subscriptions,
            updated,
            previous=sub,
            headers=headers,
        )
        await _write(request, updated, sub.id)
    held = held_by_pause(sub, updated)
    if held is not None:
        # written once the resume is on the log: the deliverer, following that log too,
        # has almost always read it before the replay's first command reaches it
        await write_job(
            request,
            new_job(
                "replay",
                tenant=sub.tenant,
                subscription_id=sub.id,
                since=held.since,
                until=held.until,
                event_types=(),
            ),
        )
    return answer(subscription_view(updated))


async def delete(request: web.Request) -> web.Response:
    who = await caller(request)
    async with changing(request, who) as sub:
        await _write(request, None, sub.id)
    return web.Response(status=204)


async def read_secret(request: web.Request) -> web.Response:
    who = await caller(request)
    sub = visible_subscription(request, who)
    return answer({"secret": _current_secret(request, sub)})


async def rotate_secret(request: web.Request) -> web.Response:
    """A new current secret; the replaced one stays valid for `expire_previous_in_s` (24 h
    if omitted) and those of earlier rotations until their own expiry: all of them sign
    meanwhile."""
    who = await caller(request)
    visible_subscription(request, who)
    spec = bodies(request)
    parsed = spec.rotate_secret.parse(await read_json(request, optional=True))
    overlap = parsed.get_or(spec.rotation.expire_previous_in_s, None)
    async with changing(request, who) as sub:
        return await _rotate(
            request,
            sub,
            overlap=DEFAULT_OVERLAP if overlap is None else timedelta(seconds=overlap),
        )


async def _rotate(request: web.Request, sub: Subscription, *, overlap: timedelta) -> web.Response:
    now = _now()
    secret = generate_secret()
    new = StoredSecret(resources(request).secrets.seal(secret, subscription_id=sub.id), None)
    updated = dataclasses.replace(
        sub,
        secrets=rotated(sub.secrets, new, now=now, overlap=overlap),
        updated_at=now,
        version=sub.version + 1,
    )
    await _write(request, updated, sub.id)
    return answer(subscription_view(updated, secret=secret))


async def ping(request: web.Request) -> web.Response:
    """Send the subscription a `webhook.ping` now, as a delivery of its own (origin test)."""
    who = await caller(request)
    sub = active_subscription(request, who)
    res = resources(request)
    event_id = str(uuid.uuid4())
    now = _now()
    event = DomainEvent(
        id=event_id,
        type=PING,
        tenant=sub.tenant,
        occurred_at=now,
        subject=Ref("subscription", sub.id),
        actor=None,
        data={"subscription_id": sub.id},
    )
    command = new_command(event, sub.id, payload=event_body(event), now=now, origin="test")
    await res.producer.send(
        settings(request).topic("deliveries"),
        key=sub.id,
        value=res.codec.codec.encode_delivery_command(command),
    )
    return answer(
        {"delivery_id": command.delivery_id, "event_id": event_id, "origin": "test"}, status=202
    )
