"""The admin API's aiohttp application: `create_app(settings, registry)`.

Resources (codec, tables, producers, the PostgreSQL pool) open in `cleanup_ctx` and close
with the app; one middleware turns every error into an RFC 9457 problem document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final
from weakref import WeakValueDictionary

import orjson
import psycopg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from api.http.auth import Authenticator, migrate_legacy_tokens
from api.http.bodies import build_bodies
from api.http.context import (
    ACCEPT_TO_ACK,
    INGEST_ADMISSION,
    MAX_BODY_BYTES,
    PRINCIPAL,
    PROBLEM_JSON,
    PUBLISH_LIMITER,
    REGISTRY,
    RESOURCES,
    SETTINGS,
    SPECS,
    WRITE_LOCKS,
    Resources,
    check_query_names,
    read_path,
)
from api.http.event_types import register_builtins
from api.http.ingest import IngestAdmission, KafkaLagProbe, LagSampler
from api.http.kafka_bridge import AsyncProducer
from api.http.openapi import build_document, event_body_schema
from api.http.operation import Handler, Operation
from api.http.quotas import PublishLimiter, publish_rate
from api.http.read_back import ReadBack
from api.http.routes import operations
from api.http.specs import LiveSpecs, Spec
from api.model.db import open_pool, schema_name
from api.model.errors import PROBLEM_TYPE_BASE, ApiError, InvalidInput, Unavailable
from api.model.jobs import JobTable
from api.model.published import forget
from api.model.tokens import TokenTable
from core.addresses import IPNetwork
from core.errors import InvalidField
from core.json_value import JsonValue
from core.records import ApiToken
from core.secretbox import SecretBox
from hookline import __version__
from hookline.runtime.codecs import open_codec
from hookline.runtime.hops import Hop, hop_histogram
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_table import SubscriptionTable
from schemas.catalog import EventCatalog, load_catalog

log = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 60.0
FORGET_INTERVAL_S: Final = 60.0
CLIENT_ID: Final = "hookline-api"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[JsonValue] | None = None,
    extensions: Mapping[str, JsonValue] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, JsonValue] = {
        **(extensions or {}),
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON, headers=headers
    )


def _problem_of(exc: ApiError) -> web.Response:
    errors: list[JsonValue] | None = None
    if isinstance(exc, InvalidInput):
        errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=errors,
        extensions=exc.extensions(),
        headers=exc.headers(),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def guarded(op: Operation, handler: Handler) -> Handler:
    """`handler` behind the route's guard when it is not public: the caller is authenticated
    (401) and must hold the route's scope (403) before the handler runs; the handler finds
    the caller with `context.caller`. A public route's handler is returned as it is."""
    if op.scope is None:
        return handler
    scope = op.scope

    async def guard(request: web.Request) -> web.StreamResponse:
        who = request.app[RESOURCES].auth.authenticate(request.headers.get("Authorization"))
        who.require_scope(scope)
        request[PRINCIPAL] = who
        return await handler(request)

    return guard


def _problems_middleware(registry: CollectorRegistry) -> web.middleware:  # type: ignore[valid-type]
    latency = Histogram(
        "hookline_api_request_seconds",
        "admin API request latency",
        ["method", "route"],
        registry=registry,
    )
    answered = Counter(
        "hookline_api_responses",
        "admin API responses by status",
        ["method", "route", "status"],
        registry=registry,
    )
    # each labelled child, looked up once: `labels()` (a lock, the names checked) was a few
    # per cent of the API's time at 500 publishes/s; a child lives as long as its metric
    timers: dict[tuple[str, str], Histogram] = {}
    counts: dict[tuple[str, str, str], Counter] = {}

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = _problem_of(exc)
        except InvalidField as exc:  # a core rule met outside a body (cursors, path values)
            response = _problem_of(InvalidInput.one(exc.field, exc.reason))
        except web.HTTPException as exc:  # routing (404, 405) and aiohttp's own 413
            slug = exc.reason.lower().replace(" ", "-")
            response = problem(exc.status, exc.reason, exc.text or exc.reason, slug=slug)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = problem(500, "Internal server error", "see the server log", slug="internal")
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        key = (request.method, route)
        timer = timers.get(key)
        if timer is None:
            timer = timers[key] = latency.labels(*key)
        timer.observe(time.perf_counter() - started)
        status_key = (*key, str(response.status))
        count = counts.get(status_key)
        if count is None:
            count = counts[status_key] = answered.labels(*status_key)
        count.inc()
        return response

    return problems


def create_app(settings: Settings, registry: CollectorRegistry) -> web.Application:
    settings.require("kafka_bootstrap", "database_url", "admin_token", "secret_key")
    specs = LiveSpecs(partial(_spec, allowed=settings.allowed_target_networks))
    # the routes are the same for every catalog: the shipped one lists them before any
    # connection is made; requests use the spec of the live catalog
    ops = specs.of(load_catalog()).operations
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[_problems_middleware(registry)]
    )
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[SPECS] = specs
    app[WRITE_LOCKS] = WeakValueDictionary()
    app[PUBLISH_LIMITER] = PublishLimiter(publish_rate(settings), clock=time.monotonic)
    app[INGEST_ADMISSION] = IngestAdmission(settings.ingest_max_lag, registry, clock=time.monotonic)
    app[ACCEPT_TO_ACK] = hop_histogram(registry).labels(Hop.ACCEPT_TO_ACK)
    for op in ops:
        app.router.add_route(
            op.method, op.path, guarded(op, _request_checked(op)), name=op.operation_id
        )
    app.cleanup_ctx.append(_resources)
    app.cleanup_ctx.append(_forgetting_published_ids)
    app.cleanup_ctx.append(_sampling_ingest_lag)
    return app


def _spec(catalog: EventCatalog, *, allowed: Sequence[IPNetwork]) -> Spec:
    bodies = build_bodies(catalog.names(), allowed)
    ops = operations(bodies, event_body_schema(bodies, catalog))
    document = orjson.dumps(build_document(ops, version=__version__))
    return Spec(catalog, bodies, ops, document)


def _request_checked(op: Operation) -> Handler:
    """The operation's handler behind the check of its path values and of its query's
    parameter names, so no handler (and no store) ever meets an id that breaks its
    parameter's rule, and no parameter the route does not take is silently ignored."""

    async def handler(request: web.Request) -> web.StreamResponse:
        read_path(request, op.path_params)
        check_query_names(request, op.query)
        return await op.handler(request)

    return handler


async def _forgetting_published_ids(app: web.Application) -> AsyncIterator[None]:
    """Once a minute, forget the published event ids out of the dedupe window or over a
    tenant's cap (`api.model.published.forget`), for as long as the app runs."""
    settings = app[SETTINGS]
    pool = app[RESOURCES].pool

    async def forget_forever() -> None:
        while True:
            window_start = _now() - timedelta(seconds=settings.event_dedupe_window_s)
            try:
                await forget(
                    pool,
                    window_start=window_start,
                    max_per_tenant=settings.event_dedupe_max_per_tenant,
                )
            except psycopg.Error as exc:  # PostgreSQL away: the next round tries again
                log.warning("cannot forget old published event ids: %s", exc)
            await asyncio.sleep(FORGET_INTERVAL_S)

    task = asyncio.create_task(forget_forever(), name="forget-published-ids")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sampling_ingest_lag(app: web.Application) -> AsyncIterator[None]:
    """The lag admission judges by, sampled on a thread of its own (its Kafka calls block)
    while the app runs; nothing when admission is off."""
    admission = app[INGEST_ADMISSION]
    if not admission.enabled:
        yield
        return
    probe = KafkaLagProbe(app[SETTINGS], client_id=CLIENT_ID)
    sampler = LagSampler(probe, admission, app[REGISTRY], clock=time.monotonic)
    stopping = threading.Event()
    thread = threading.Thread(target=sampler.run, args=(stopping,), name="ingest-lag", daemon=True)
    thread.start()
    yield
    stopping.set()
    await asyncio.to_thread(thread.join)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.admin_token is not None
    assert settings.secret_key is not None
    codec = await asyncio.to_thread(open_codec, settings, client_id=CLIENT_ID, follow_catalog=True)
    read_back = ReadBack()
    subscriptions = SubscriptionTable(
        settings, codec.codec, client_id=f"{CLIENT_ID}-subs", on_change=read_back.on_change
    )
    jobs = JobTable(settings, codec.codec, client_id=f"{CLIENT_ID}-jobs")
    tokens = TokenTable(settings, codec.codec, client_id=f"{CLIENT_ID}-tokens")
    producer = AsyncProducer.open(settings, client_id=CLIENT_ID)
    pool = None
    try:
        subscriptions.start()
        jobs.start()
        tokens.start()
        pool = await open_pool(settings)
        for table in (subscriptions, jobs, tokens):
            if not await asyncio.to_thread(table.wait_ready, READY_TIMEOUT_S):
                table.check()
                raise Unavailable(f"{type(table).__name__} not caught up in time")

        async def send_token(token: ApiToken) -> None:
            value = codec.codec.encode_token(token)
            await producer.send(settings.topic("tokens"), key=token.id, value=value)

        await migrate_legacy_tokens(pool, schema_name(settings), tokens, send_token)
        app[RESOURCES] = Resources(
            codec=codec,
            subscriptions=subscriptions,
            read_back=read_back,
            jobs=jobs,
            producer=producer,
            pool=pool,
            tokens=tokens,
            auth=Authenticator(tokens.find, admin_token=settings.admin_token.value, now=_now),
            secrets=SecretBox.from_base64(settings.secret_key.value),
        )
        registered = await register_builtins(app[RESOURCES], settings)
        if registered:
            log.info("registered the built-in event types %s", ", ".join(registered))
        yield
    finally:
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(producer.close)
        await asyncio.to_thread(tokens.close)
        await asyncio.to_thread(jobs.close)
        await asyncio.to_thread(subscriptions.close)
        await asyncio.to_thread(codec.close)
