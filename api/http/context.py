"""What every handler shares: the app's resources (typed `web.AppKey`s), the caller, and
the JSON helpers for bodies and answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakValueDictionary

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from psycopg_pool import AsyncConnectionPool

from api.http.auth import Authenticator, Principal
from api.http.bodies import Bodies
from api.http.fields import JsonSchema, PathParam, QueryParam
from api.http.ingest import IngestAdmission
from api.http.kafka_bridge import AsyncProducer
from api.http.quotas import PublishLimiter
from api.http.read_back import ReadBack
from api.http.specs import LiveSpecs, Spec
from api.model.errors import (
    BadRequest,
    FieldProblem,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SubscriptionNotActive,
)
from api.model.jobs import JobTable
from api.model.tokens import TokenTable
from core.errors import InvalidField
from core.json_value import JsonValue
from core.records import Subscription
from core.secretbox import SecretBox
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.event_types import EventTypeTable
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_table import SubscriptionTable

MAX_BODY_BYTES: Final = 1024 * 1024
READ_BACK_TIMEOUT_S: Final = 30.0
JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"


@dataclass(slots=True)
class Resources:
    """Opened in the app's cleanup context, closed when it stops."""

    codec: CodecRuntime
    subscriptions: SubscriptionTable
    read_back: ReadBack
    jobs: JobTable
    producer: AsyncProducer
    pool: AsyncConnectionPool
    tokens: TokenTable
    auth: Authenticator
    secrets: SecretBox

    @property
    def event_types(self) -> EventTypeTable:
        """The table the catalog follows (the API's codec always follows one)."""
        assert self.codec.catalog is not None
        return self.codec.catalog.table


SETTINGS: Final = web.AppKey("settings", Settings)
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
SPECS: Final = web.AppKey("specs", LiveSpecs)
RESOURCES: Final = web.AppKey("resources", Resources)
WRITE_LOCKS: Final = web.AppKey("write_locks", WeakValueDictionary[str, asyncio.Lock])
PUBLISH_LIMITER: Final = web.AppKey("publish_limiter", PublishLimiter)
INGEST_ADMISSION: Final = web.AppKey("ingest_admission", IngestAdmission)
ACCEPT_TO_ACK: Final = web.AppKey("accept_to_ack", Histogram)
"""The `accept_to_ack` hop's histogram: a publish read -> Kafka acknowledged its event."""
PRINCIPAL: Final = web.RequestKey("principal", Principal)
"""Where the route's guard (`api.http.app`) leaves the authenticated caller in a request."""


def resources(request: web.Request) -> Resources:
    return request.app[RESOURCES]


def spec(request: web.Request) -> Spec:
    """The bodies and document of the catalog as of now (it follows the `event-types` topic)."""
    return request.app[SPECS].of(resources(request).codec.codec.catalog)


def bodies(request: web.Request) -> Bodies:
    return spec(request).bodies


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


async def caller(request: web.Request) -> Principal:
    """The authenticated caller. The app guards every route that is not public: it has
    authenticated the request (401) and checked the route's scope (403) before the handler
    runs, and left the caller here."""
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise RuntimeError(f"{request.method} {request.path}: the route is not guarded") from None


async def read_json(request: web.Request, *, optional: bool = False) -> JsonValue:
    """The body as JSON; 413 over the limit, 408 when it is not all there within
    `api_body_timeout_s` (a client trickling a body holds a connection no longer), 400 when
    it cannot be read or is not JSON. An empty body reads as `{}` when the body is
    `optional`, else answers 400."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    timeout_s = settings(request).api_body_timeout_s
    # a body already all there is read without waiting: no timer to arm and cancel
    wait_s = None if request.content.is_eof() else timeout_s
    try:
        async with asyncio.timeout(wait_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout_s:g} s") from None
    except web.RequestPayloadError:  # bytes that do not follow their Content-Encoding
        raise BadRequest("the body cannot be read: it does not follow its encoding") from None
    if not raw.strip():
        if optional:
            return {}
        raise BadRequest("the request needs a JSON body")
    try:
        value: JsonValue = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    return value


def read_query(request: web.Request, params: tuple[QueryParam[Any], ...]) -> dict[str, object]:
    """Every query parameter parsed; InvalidInput names each bad one."""
    values: dict[str, object] = {}
    problems: list[FieldProblem] = []
    for param in params:
        try:
            value = param.read(request.query)
        except InvalidField as exc:
            problems.append(FieldProblem(exc.field, exc.reason))
            continue
        if value is not None:
            values[param.name] = value
    if problems:
        raise InvalidInput(problems)
    return values


def check_query_names(request: web.Request, params: tuple[QueryParam[Any], ...]) -> None:
    """Every query parameter is one the route takes, given once; InvalidInput names each
    other one. A misspelt filter (`?stat=dead`) ignored would answer as if none were asked."""
    if not request.query:
        return
    known = {param.name for param in params}
    takes = ", ".join(sorted(known)) or "none"
    problems = [
        FieldProblem(name, f"unknown query parameter; this route takes: {takes}")
        if name not in known
        else FieldProblem(name, "given more than once")
        for name in dict.fromkeys(request.query)
        if name not in known or len(request.query.getall(name)) > 1
    ]
    if problems:
        raise InvalidInput(problems)


def read_path(request: web.Request, params: tuple[PathParam[Any], ...]) -> None:
    """Every path value checked against its parameter; InvalidInput names each bad one."""
    problems: list[FieldProblem] = []
    for param in params:
        try:
            param.read(request.match_info)
        except InvalidField as exc:
            problems.append(FieldProblem(exc.field, exc.reason))
    if problems:
        raise InvalidInput(problems)


def answer(value: JsonValue, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type=JSON)


@asynccontextmanager
async def changing(request: web.Request, who: Principal) -> AsyncIterator[Subscription]:
    """The path's subscription, re-read under this process's write lock for it, so
    concurrent writes (a rotate racing a delete) apply one after the other."""
    async with _write_lock(request, request.match_info["id"]):
        yield visible_subscription(request, who)


@asynccontextmanager
async def counting(request: web.Request, tenant: str) -> AsyncIterator[None]:
    """This process's lock on a tenant's quota counts, held from the check until the write is
    read back, so two concurrent creates cannot both take the last place."""
    async with _write_lock(request, f"tenant/{tenant}"):
        yield


@asynccontextmanager
async def event_type_lock(request: web.Request, name: str) -> AsyncIterator[None]:
    """This process's lock on an event type, held from reading its revision until the next
    is read back, so two concurrent changes apply one after the other."""
    async with _write_lock(request, f"event-type/{name}"):
        yield


def _write_lock(request: web.Request, key: str) -> asyncio.Lock:
    locks = request.app[WRITE_LOCKS]
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


def visible_subscription(request: web.Request, who: Principal) -> Subscription:
    """The subscription of the path's `id` when the caller may see it; else 404."""
    subscription_id = request.match_info["id"]
    sub = resources(request).subscriptions.get(subscription_id)
    if sub is None or not who.can_see(sub.tenant):
        raise NotFound("subscription", subscription_id)
    return sub


def active_subscription(request: web.Request, who: Principal) -> Subscription:
    """The path's subscription for a request that sends to it (test, replay, recover): 404
    as `visible_subscription`, 409 naming the state when it is paused or disabled, since
    what is sent to it would only be dead-lettered or dropped."""
    sub = visible_subscription(request, who)
    if sub.status != "active":
        raise SubscriptionNotActive(sub)
    return sub


__all__ = ["JsonSchema"]
