"""Hostile input on every route of the generated OpenAPI document, against the real app on
real Kafka and PostgreSQL: no answer is a 5xx, and every answer that is not a success is a
problem document (`application/problem+json` with `type`, `title` and `status`).

Schemathesis stays inside the schema; this test goes outside it on purpose. Each request
starts from a value the document describes and puts something hostile somewhere in it: NUL,
lone surrogates, control characters, dates that overflow once converted to UTC, huge
integers, very long strings, JSON that is not JSON, and raw bytes that are not UTF-8 (or not
latin-1) in the Authorization and other headers. Requests go over a raw socket, so header
bytes reach the server exactly as drawn.

The routes come from `build_document` (the function `/openapi.json` serves), so a new route
is fuzzed without a change here. What aiohttp's HTTP parser refuses never reaches the app
and is not generated: a NUL or CR in a header, a request line over 8 KiB, a
`Content-Encoding` it has no decoder for (`br` without Brotli), a second `Content-Type`; it
answers those with its own plain-text 400. The one such answer allowed here is to a body that
breaks its `Content-Encoding` (see `_parser_refused_encoding`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import quote, quote_from_bytes

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from api.http.bodies import build_bodies
from api.http.openapi import build_document, event_body_schema
from api.http.routes import operations
from core.time_bounds import EARLIEST, LATEST
from hookline import __version__
from hookline.runtime.settings import Settings
from schemas.catalog import load_catalog
from tests.integration.api.conftest import Api, command, subscription_body, write_history
from tests.integration.api.raw_http import Reply, Request, problem_of, send

pytestmark = pytest.mark.integration

CATALOG: Final = load_catalog()
_BODIES: Final = build_bodies(CATALOG.names(), ())
DOCUMENT: Final[Any] = build_document(
    operations(_BODIES, event_body_schema(_BODIES, CATALOG)), version=__version__
)
COMPONENTS: Final[Mapping[str, Any]] = DOCUMENT["components"]["schemas"]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the document."""

    method: str
    path: str
    spec: Mapping[str, Any]


ROUTES: Final = tuple(
    Route(method.upper(), path, spec)
    for path, item in DOCUMENT["paths"].items()
    for method, spec in item.items()
)
WHO: Final = ("admin", "tenant")
EXAMPLES: Final = 110
"""Per route and token: 110 x 23 routes x 2 tokens = 5,060 requests."""
TENANT: Final = "fuzz"
MAX_TARGET_BYTES: Final = 8000  # aiohttp refuses a request line over 8190 bytes itself

NASTY: Final = (
    "\x00",
    "\ud800",
    "\udfff",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "%00",
    "../",
    "\\",
    "'",
    '"',
    "\r\n",
)
DATES: Final = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "9999-12-30T23:59:59.999Z",
    "10000-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00\x00Z",
)
HEADER_NAMES: Final = (
    b"Authorization",
    b"Content-Type",
    b"Content-Encoding",
    b"Accept",
    b"Accept-Encoding",
    b"Cookie",
    b"User-Agent",
    b"Origin",
    b"X-Request-Id",
    b"Forwarded",
)

any_char = st.characters(exclude_categories=())  # lone surrogates and controls included
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
moments = st.datetimes(timezones=offsets.map(timezone)).map(lambda m: m.isoformat())
hostile_text = st.one_of(
    st.text(any_char, max_size=30),
    st.tuples(st.text(any_char, max_size=10), st.sampled_from(NASTY), st.text(max_size=10)).map(
        "".join
    ),
    st.sampled_from(DATES),
    moments,
    st.integers(min_value=-(2**200), max_value=2**200).map(str),
    st.text(st.sampled_from("x%\u00e9\x00\u4e2d"), min_size=201, max_size=1200),
)
url_text = st.one_of(  # what a path or query value may be before it is percent-encoded
    hostile_text.filter(lambda t: len(t) <= 400),
    st.text(st.sampled_from("ab-_.~"), min_size=201, max_size=1000),
)
hostile_json: st.SearchStrategy[object] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**200), max_value=2**200),
        st.floats(),  # NaN and infinities too: json.dumps writes them, orjson refuses them
        hostile_text,
        st.text(st.sampled_from("ab"), min_size=10_000, max_size=100_000),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=8,
)
raw_bodies = st.one_of(
    st.binary(max_size=300),  # not UTF-8, not JSON
    st.text(any_char, max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.just(b""),
    st.just(b'{"a":' * 2000),
    st.just(b"[" + b"0," * 600_000 + b"0]"),  # over the 1 MiB limit
)


def _field_value(raw: bytes) -> bytes:
    """`raw` reduced to the bytes HTTP allows in a field value (visible ASCII, space, tab and
    obs-text 0x80-0xFF), so the parser hands it to the app instead of refusing the framing."""
    return bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F).strip(b" \t")


header_bytes = st.one_of(
    st.binary(max_size=80),  # invalid UTF-8
    st.text(any_char, max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),  # not latin-1
    st.sampled_from([b"gzip", b"deflate", b"identity", b"gzip, deflate"]),
).map(_field_value)


@dataclass(frozen=True, slots=True)
class Target:
    """The app's port, a token per caller, and ids of records that exist, by collection."""

    port: int
    tokens: Mapping[str, str]
    known: Mapping[str, Mapping[str, tuple[str, ...]]]


def valid(schema: Mapping[str, Any]) -> st.SearchStrategy[object]:  # noqa: PLR0911 -- one branch per JSON Schema keyword the document uses
    """Values of the subset of JSON Schema the document is written in."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return st.deferred(lambda: valid(COMPONENTS[name]))  # a component may refer to itself
    if "oneOf" in schema or "anyOf" in schema:
        return st.one_of([valid(s) for s in schema.get("oneOf", schema.get("anyOf"))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    match schema.get("type"):
        case list() as kinds:
            return st.one_of([valid({"type": k}) for k in kinds])
        case "string":
            return _valid_string(schema)
        case "integer" | "number":
            low, high = int(schema.get("minimum", 0)), int(schema.get("maximum", 1000))
            return st.integers(min_value=max(1, low), max_value=high)
        case "boolean":
            return st.booleans()
        case "null":
            return st.none()
        case "array":
            size = schema.get("minItems", 0)
            return st.lists(valid(schema.get("items", {})), min_size=size, max_size=size + 2)
        case "object":
            return _valid_object(schema)
    return hostile_json


def _valid_string(schema: Mapping[str, Any]) -> st.SearchStrategy[object]:
    if schema.get("format") == "date-time":
        inside = st.datetimes(EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None))
        return inside.map(lambda m: m.replace(tzinfo=UTC).isoformat())
    if "pattern" in schema:
        return st.from_regex(schema["pattern"])
    return st.text(min_size=schema.get("minLength", 0), max_size=20)


def _valid_object(schema: Mapping[str, Any]) -> st.SearchStrategy[object]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return st.dictionaries(st.text(min_size=1, max_size=8), valid(extra), max_size=3)
    if not properties:
        return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    return st.fixed_dictionaries(
        {k: valid(v) for k, v in properties.items() if k in required},
        optional={k: valid(v) for k, v in properties.items() if k not in required},
    )


@st.composite
def mutated(draw: st.DrawFn, value: object) -> object:
    """`value` with one hostile thing in it: at a member, an item, a new key, or everywhere."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)) | hostile_text)
        return {**value, key: draw(mutated(value.get(key)))}
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(min_value=0, max_value=len(value) - 1))
        return [*value[:index], draw(mutated(value[index])), *value[index + 1 :]]
    return draw(hostile_json)


def _to_json(value: object, *, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)  # big ints and NaN, unlike orjson
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes, not UTF-8


def _quote(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return quote_from_bytes(value, safe="")
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def path_value(draw: st.DrawFn, schema: Mapping[str, Any], known: tuple[str, ...]) -> str:
    choices: list[st.SearchStrategy[str | bytes]] = [url_text, st.binary(max_size=40)]
    choices.append(valid(schema))  # type: ignore[arg-type]
    if known:
        choices.append(st.sampled_from(known))
    return _quote(draw(st.one_of(choices)))


@st.composite
def requests(draw: st.DrawFn, route: Route, target: Target, who: str) -> Request:
    """A request to one operation of the document, hostile somewhere."""
    path, spec = route.path, route.spec
    known = target.known[who]
    url = path
    query: list[tuple[str, str]] = []
    for parameter in spec.get("parameters", ()):
        name, schema = parameter["name"], parameter["schema"]
        if parameter["in"] == "path":
            collection = path.split("/{" + name + "}", maxsplit=1)[0].rsplit("/", 1)[1]
            value = draw(path_value(schema, known.get(collection, ())))
            url = url.replace("{" + name + "}", value)
        elif draw(st.booleans()):
            raw: str | bytes = draw(
                st.one_of(url_text, valid(schema).map(str), st.binary(max_size=40))
            )
            if name == "cursor" and draw(st.booleans()):
                raw = encoded_cursor(draw(st.lists(url_text, min_size=2, max_size=2)))
            query.append((name, _quote(raw)))
    target_text = url + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    assume(len(target_text) < MAX_TARGET_BYTES)
    headers: list[tuple[bytes, bytes]] = []
    token = target.tokens[who].encode()
    authorization = draw(
        st.sampled_from(["token", "token", "token", "token", "hostile", "raw", "none"])
    )
    if authorization == "token":
        headers.append((b"Authorization", b"Bearer " + token))
    elif authorization == "hostile":
        headers.append((b"Authorization", b"Bearer " + draw(header_bytes)))
    elif authorization == "raw":
        headers.append((b"Authorization", draw(header_bytes)))
    if draw(st.booleans()):
        headers.append((draw(st.sampled_from(HEADER_NAMES[1:])), draw(header_bytes)))
    body = b""
    if "requestBody" in spec:
        if all(name != b"Content-Type" for name, _ in headers):  # a second one is a framing error
            headers.append((b"Content-Type", b"application/json"))
        schema = spec["requestBody"]["content"]["application/json"]["schema"]
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            body = draw(raw_bodies)
        else:
            payload = draw(mutated(draw(valid(schema))))
            body = _to_json(payload, ascii_only=draw(st.booleans()))
    return Request(route.method, target_text.encode("ascii"), tuple(headers), body)


def encoded_cursor(parts: list[str]) -> str:
    """A cursor of the API's own shape (URL-safe base64 of a JSON list) around any strings."""
    raw = json.dumps(parts).encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _parser_refused_encoding(request: Request, reply: Reply) -> bool:
    """aiohttp's parser decodes a body while it arrives; when the bytes break their
    `Content-Encoding` before a handler reads them (one that never reads its body, or a
    route that does not match), the parser answers its own plain-text 400 in the app's
    place."""
    encoded = any(name == b"Content-Encoding" for name, _ in request.headers)
    return encoded and reply.status == 400 and reply.content_type == "text/plain"


def assert_answer_is_total(request: Request, reply: Reply) -> None:
    where = f"{request.method} {request.target!r} headers={request.headers!r}"
    assert reply.status < 500, f"{where} -> {reply.status}: {reply.body[:500]!r}"
    if not 200 <= reply.status < 300 and not _parser_refused_encoding(request, reply):
        problem_of(reply, request=request)


async def _subscription(api: Api, token: str) -> str:
    body = await api.ok("POST", "/v1/subscriptions", 201, token=token, json=subscription_body())
    subscription_id: str = body["id"]
    return subscription_id


async def _records(api: Api, settings_: Settings, token: str, tenant: str) -> dict[str, str]:
    """A delivery and a job of a subscription made with `token`."""
    subscription_id = await _subscription(api, token)
    delivery = command(subscription_id=subscription_id, tenant=tenant)
    write_history(settings_, [delivery])
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    job = await api.ok(
        "POST",
        f"/v1/subscriptions/{subscription_id}/replay",
        202,
        token=token,
        json={"since": since},
    )
    return {"deliveries": delivery.delivery_id, "jobs": job["id"]}


def _both(own: Mapping[str, str], other: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Ids of the caller's own records first, then another tenant's (404 to a tenant)."""
    return {name: (own[name], other[name]) for name in own}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def records(api: Api, api_settings: Settings) -> Target:
    served = await api.ok("GET", "/openapi.json")
    assert served["paths"] == DOCUMENT["paths"], "the fuzzed document is the one served"
    tenant_token = await api.tenant_token(TENANT)
    admin = await _records(api, api_settings, api.admin, "default")
    tenant = await _records(api, api_settings, tenant_token, TENANT)
    tenants = {"tenants": (TENANT, "default", str(uuid.uuid4()))}
    return Target(
        port=api.client.server.port or 0,
        tokens={"admin": api.admin, "tenant": tenant_token},
        known={
            "admin": {**_both(admin, tenant), **tenants},
            "tenant": {**_both(tenant, admin), **tenants},
        },
    )


@pytest_asyncio.fixture(loop_scope="session")
async def target(api: Api, records: Target) -> Target:
    """The module's records plus a fresh subscription per caller for each test, since a
    test of DELETE (or a PATCH to `disabled`) may take the previous ones away."""
    admin = await _subscription(api, records.tokens["admin"])
    tenant = await _subscription(api, records.tokens["tenant"])
    subscriptions = {"admin": (admin, tenant), "tenant": (tenant, admin)}
    return dataclasses.replace(
        records,
        known={
            who: {**ids, "subscriptions": subscriptions[who]} for who, ids in records.known.items()
        },
    )


def _route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


@pytest.mark.timeout(170)
@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a write waits for Kafka; its time is not what this test is about
    # `target` is function-scoped on purpose: one fresh subscription shared by every example
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
async def test_no_input_is_a_server_error_and_every_refusal_is_a_problem(
    target: Target, route: Route, who: str, data: st.DataObject
) -> None:
    request = data.draw(requests(route, target, who), label="request")
    reply = await send(target.port, request)
    assert_answer_is_total(request, reply)
