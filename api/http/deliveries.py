"""Handlers of the history and its jobs: deliveries, redeliver, replay, recover, jobs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from aiohttp import web

from api.http.bodies import DEFAULT_LIMIT, Bodies
from api.http.context import (
    READ_BACK_TIMEOUT_S,
    active_subscription,
    answer,
    bodies,
    caller,
    read_json,
    read_query,
    resources,
    settings,
)
from api.http.fields import Parsed
from api.http.views import delivery_view, job_view
from api.model.errors import InvalidInput, JobEnded, NotFound, Unavailable
from api.model.history import DeliveryFilter, get_delivery, list_deliveries, stored_command
from api.model.jobs import JobQuery, new_job, page_of_jobs
from api.model.reissue import reissue_command
from core.attempts import attempt_number
from core.cursors import decode_cursor, encode_cursor
from core.records import Job, JobKind, Subscription, utc_ms


async def list_all(request: web.Request) -> web.Response:
    who = await caller(request)
    spec = bodies(request)
    q = spec.deliveries
    query = read_query(
        request,
        (spec.limit, spec.cursor, *spec.delivery_params),
    )

    def text(name: str) -> str | None:
        value = query.get(name)
        return None if value is None else str(value)

    def moment(name: str) -> datetime | None:
        value = query.get(name)
        return value if isinstance(value, datetime) else None

    page = await list_deliveries(
        resources(request).pool,
        DeliveryFilter(
            tenant=who.tenant,
            subscription_id=text(q.subscription_id.name),
            event_id=text(q.event_id.name),
            event_type=text(q.event_type.name),
            status=text(q.status.name),
            since=moment(q.since.name),
            until=moment(q.until.name),
        ),
        limit=int(str(query.get("limit", 50))),
        cursor=text("cursor"),
    )
    return answer({"data": [delivery_view(r) for r in page.rows], "next_cursor": page.next_cursor})


async def read(request: web.Request) -> web.Response:
    who = await caller(request)
    delivery_id = request.match_info["id"]
    found = await get_delivery(resources(request).pool, delivery_id, tenant=who.tenant)
    if found is None:
        raise NotFound("delivery", delivery_id)
    row, attempts = found
    return answer(delivery_view(row, attempts))


async def redeliver(request: web.Request) -> web.Response:
    """Send one delivery again now: same delivery id and event id, so the same webhook-id;
    the answer names the attempt number it gets in the history."""
    who = await caller(request)
    delivery_id = request.match_info["id"]
    res = resources(request)
    stored = await stored_command(res.pool, delivery_id, tenant=who.tenant)
    if stored is None:
        raise NotFound("delivery", delivery_id)
    command = reissue_command(stored, origin="redeliver", job_id=None)
    await res.producer.send(
        settings(request).topic("deliveries"),
        key=command.subscription_id,
        value=res.codec.codec.encode_delivery_command(command),
    )
    return answer(
        {
            "delivery_id": delivery_id,
            "event_id": command.event_id,
            "origin": "redeliver",
            "attempt": attempt_number(command),
        },
        status=202,
    )


async def _record(request: web.Request, job: Job) -> web.Response:
    """Write the job's record and answer 202 once the API's jobs table has it."""
    await write_job(request, job)
    return answer(job_view(job), status=202)


async def write_job(request: web.Request, job: Job) -> None:
    """Write the job's record; return once the API's jobs table has it."""
    res = resources(request)
    await res.producer.send(
        settings(request).topic("control"), key=job.id, value=res.codec.codec.encode_job(job)
    )
    seen = await asyncio.to_thread(
        res.jobs.wait_for, job.id, updated_at=job.updated_at, timeout_s=READ_BACK_TIMEOUT_S
    )
    if not seen:
        raise Unavailable(f"job {job.id}: written, but not read back in time")


async def replay(request: web.Request) -> web.Response:
    who = await caller(request)
    sub = active_subscription(request, who)
    spec = bodies(request)
    parsed = spec.replay.parse(await read_json(request))
    return await _record(request, _job("replay", sub, spec, parsed))


async def recover(request: web.Request) -> web.Response:
    """Send again the deliveries that became failed or dead in the window, as replay takes
    it: `since`, `until` (the job's start if omitted) and `event_types`."""
    who = await caller(request)
    sub = active_subscription(request, who)
    spec = bodies(request)
    parsed = spec.recover.parse(await read_json(request))
    return await _record(request, _job("recover", sub, spec, parsed))


def _job(kind: JobKind, sub: Subscription, spec: Bodies, parsed: Parsed) -> Job:
    """A replay or recover job of `sub` over the body's window and types."""
    since = parsed.get(spec.job.since)
    until = parsed.get_or(spec.job.until, None)
    if until is not None and until <= since:
        raise InvalidInput.one("until", "must be later than since")
    if since > datetime.now(UTC):
        raise InvalidInput.one("since", "must not be in the future")
    return new_job(
        kind,
        tenant=sub.tenant,
        subscription_id=sub.id,
        since=since,
        until=until,
        event_types=parsed.get_or(spec.job.event_types, ()),
    )


async def list_jobs(request: web.Request) -> web.Response:
    """The caller's jobs (every tenant's for the admin), newest first."""
    who = await caller(request)
    spec = bodies(request)
    query = read_query(request, (spec.limit, spec.cursor, *spec.job_params))

    def text(name: str) -> str | None:
        value = query.get(name)
        return None if value is None else str(value)

    cursor = text(spec.cursor.name)
    after = None if cursor is None else decode_cursor(cursor, arity=2)
    page, last = page_of_jobs(
        resources(request).jobs.snapshot().values(),
        JobQuery(
            tenant=who.tenant, status=text(spec.jobs.status.name), kind=text(spec.jobs.kind.name)
        ),
        limit=int(str(query.get(spec.limit.name, DEFAULT_LIMIT))),
        after=None if after is None else (after[0], after[1]),
    )
    next_cursor = None if last is None else encode_cursor(last)
    return answer({"data": [job_view(j) for j in page], "next_cursor": next_cursor})


async def read_job(request: web.Request) -> web.Response:
    who = await caller(request)
    job_id = request.match_info["id"]
    job = resources(request).jobs.get(job_id)
    if job is None or not who.can_see(job.tenant):
        raise NotFound("job", job_id)
    return answer(job_view(job))


async def cancel_job(request: web.Request) -> web.Response:
    """Record the running job `cancelled`; the replayer running it stops at its next
    checkpoint and records it `cancelled` with its progress."""
    who = await caller(request)
    job_id = request.match_info["id"]
    job = resources(request).jobs.get(job_id)
    if job is None or not who.can_see(job.tenant):
        raise NotFound("job", job_id)
    if job.status != "running":
        raise JobEnded(job_id, job.status)
    now = utc_ms(datetime.now(UTC))
    cancelled = dataclasses.replace(job, status="cancelled", updated_at=max(now, job.updated_at))
    return await _record(request, cancelled)
