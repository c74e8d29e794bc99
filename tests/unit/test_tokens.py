"""The token rules: scopes, expiry and revocation, the record on the tokens topic, reading
the Authorization header whatever bytes it holds, the scope each route needs, and the token
routes' bodies and document."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.http.auth import Authenticator, Principal, bearer_token
from api.http.bodies import build_bodies
from api.http.routes import operations
from api.model.errors import InsufficientScope, InvalidInput, Unauthorized
from api.model.tokens import page_of_tokens, token_key
from core.matching import is_platform_type
from core.records import ApiToken
from core.tokens import (
    MAX_EXPIRES_IN_S,
    SCOPES,
    hash_token,
    legacy_token,
    looks_like_token,
    new_token,
    refusal,
    same_token,
    stays_revoked,
    token_bytes,
)
from schemas.catalog import load_catalog
from schemas.codec import encode
from tests.unit.test_api_document import _document
from tests.unit.test_records_avro import make_codec

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
BODIES = build_bodies(load_catalog().names(), ())
ADMIN = "the-admin-token-of-this-test"


def _token(**changes: Any) -> tuple[str, ApiToken]:
    fields: dict[str, Any] = {
        "token_id": "tok-1",
        "tenant": "acme",
        "scopes": SCOPES,
        "now": T0,
        "expires_in_s": None,
    }
    fields.update(changes)
    return new_token(**fields)


# -- scopes, expiry, revocation ---------------------------------------------------------------


def test_a_new_token_is_kept_only_as_its_hash() -> None:
    secret, token = _token(scopes=("publish", "read"), expires_in_s=60)
    assert looks_like_token(secret)
    assert token.token_hash == hash_token(secret)
    assert secret not in repr(token)
    assert token.scopes == ("read", "publish")  # in the one order of SCOPES
    assert token.expires_at == T0 + timedelta(seconds=60)
    assert refusal(token, T0) is None


def test_a_token_is_refused_from_its_expiry_and_once_revoked() -> None:
    _secret, token = _token(expires_in_s=1)
    assert refusal(token, T0 + timedelta(milliseconds=999)) is None
    assert refusal(token, T0 + timedelta(seconds=1)) == "the token has expired"
    _secret, forever = _token()
    assert refusal(forever, T0 + timedelta(days=3650 * 3)) is None
    revoked = dataclasses.replace(forever, revoked_at=T0)
    assert refusal(revoked, T0 - timedelta(days=1)) == "the token was revoked"


def test_a_revoked_token_stays_revoked_whatever_is_read_after() -> None:
    _secret, token = _token()
    revoked = dataclasses.replace(token, revoked_at=T0)
    assert stays_revoked(None, token) is token
    assert stays_revoked(token, revoked) is revoked
    assert stays_revoked(revoked, token) is revoked  # a migration racing the revoke


def test_a_legacy_token_has_every_scope_no_expiry_and_an_id_from_its_hash() -> None:
    digest = hash_token("hl_legacy")
    first = legacy_token(digest, tenant="acme", created_at=T0)
    again = legacy_token(digest, tenant="acme", created_at=T0)
    assert first == again
    assert first.scopes == SCOPES
    assert first.expires_at is None
    assert first.id != legacy_token(hash_token("hl_other"), tenant="acme", created_at=T0).id


@given(st.text())
def test_any_text_has_bytes_a_hash_and_compares(text: str) -> None:
    assert isinstance(token_bytes(text), bytes)
    assert len(hash_token(text)) == 64
    assert same_token(text, text)
    assert not same_token(text, text + "x")


def test_header_bytes_round_trip_through_surrogateescape() -> None:
    sent = b"\xff\xfehl_\xc3\xa9"
    assert token_bytes(sent.decode("utf-8", "surrogateescape")) == sent


def test_the_platform_types_are_webhook_star() -> None:
    assert is_platform_type("webhook.ping")
    assert is_platform_type("webhook.anything")
    assert not is_platform_type("task.created")
    assert not is_platform_type("webhooks.ping")


# -- the record -------------------------------------------------------------------------------


def test_token_round_trips() -> None:
    codec = make_codec()
    _secret, token = _token(scopes=("read",), expires_in_s=3600)
    for original in (token, dataclasses.replace(token, revoked_at=T0 + timedelta(seconds=5))):
        assert codec.decode_token(codec.encode_token(original)) == original


def test_a_scope_the_reader_does_not_know_is_dropped() -> None:
    codec = make_codec()
    _secret, token = _token()
    record = {
        "id": token.id,
        "token_hash": token.token_hash,
        "tenant": "acme",
        "scopes": ["read", "superpower"],
        "created_at": T0,
        "expires_at": None,
        "revoked_at": None,
    }
    decoded = codec.decode_token(encode(codec.records.token, record))
    assert decoded.scopes == ("read",)


def test_the_list_is_the_tenants_live_tokens_oldest_first_in_pages() -> None:
    tokens = [_token(token_id=f"t{n}", now=T0 + timedelta(seconds=n))[1] for n in range(5)] + [
        _token(token_id="other", tenant="globex")[1],
        dataclasses.replace(_token(token_id="gone")[1], revoked_at=T0),
    ]
    page, last = page_of_tokens(tokens, tenant="acme", limit=2, after=None)
    assert [t.id for t in page] == ["t0", "t1"]
    assert last == token_key(page[-1])
    page, last = page_of_tokens(tokens, tenant="acme", limit=2, after=last)
    assert [t.id for t in page] == ["t2", "t3"]
    page, last = page_of_tokens(tokens, tenant="acme", limit=2, after=last)
    assert [t.id for t in page] == ["t4"]
    assert last is None


# -- the Authorization header -----------------------------------------------------------------


def _authenticator(*tokens: ApiToken, now: datetime = T0) -> Authenticator:
    by_hash = {t.token_hash: t for t in tokens}
    return Authenticator(by_hash.get, admin_token=ADMIN, now=lambda: now)


def _refused(auth: Authenticator, header: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        auth.authenticate(header)
    return caught.value


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic abc", "Token hl_x", "\udcff\udcfe"]
)
def test_no_bearer_token_is_a_challenge_without_an_error_code(header: str | None) -> None:
    refused = _refused(_authenticator(), header)
    assert refused.headers() == {"WWW-Authenticate": 'Bearer realm="hookline"'}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer \udcff\udcfe",  # the bytes ff fe as aiohttp hands them over
        "Bearer hl_\udcc3\udca9",
        "Bearer hl_é",
        "Bearer \ud800",  # a surrogate no decoding makes
        "Bearer hl_not-a-token",
        "Bearer " + "x" * 10_000,
        "Bearer the-admin-token-of-this-tes",
    ],
)
def test_a_refused_token_is_401_invalid_token_whatever_its_bytes(header: str) -> None:
    refused = _refused(_authenticator(), header)
    challenge = refused.headers()["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="hookline", error="invalid_token"')
    assert challenge.isascii()


def test_the_admin_token_has_every_scope() -> None:
    for header in (f"Bearer {ADMIN}", f"bearer   {ADMIN}  ", f"BEARER {ADMIN}"):
        who = _authenticator().authenticate(header)
        assert who == Principal(None)
        for scope in SCOPES:
            who.require_scope(scope)


def test_a_tenant_token_carries_its_tenant_and_scopes_until_refused() -> None:
    secret, token = _token(scopes=("read",), expires_in_s=10)
    who = _authenticator(token).authenticate(f"Bearer {secret}")
    assert (who.tenant, who.scopes, who.token_id) == ("acme", frozenset({"read"}), "tok-1")
    who.require_scope("read")
    with pytest.raises(InsufficientScope) as caught:
        who.require_scope("write")
    assert caught.value.status == 403
    assert caught.value.extensions() == {"scope": "write"}
    assert 'error="insufficient_scope"' in caught.value.headers()["WWW-Authenticate"]
    assert 'scope="write"' in caught.value.headers()["WWW-Authenticate"]
    late = _authenticator(token, now=T0 + timedelta(seconds=10))
    assert _refused(late, f"Bearer {secret}").detail == "the token has expired"
    revoked = _authenticator(dataclasses.replace(token, revoked_at=T0))
    assert _refused(revoked, f"Bearer {secret}").detail == "the token was revoked"


def test_bearer_token_takes_the_credentials_after_the_scheme() -> None:
    assert bearer_token("Bearer hl_abc") == "hl_abc"
    assert bearer_token("  bearer   hl_abc  ") == "hl_abc"


# -- routes, bodies and the document ----------------------------------------------------------


def test_every_route_needs_a_scope_unless_public() -> None:
    for op in operations(BODIES, {}):
        if op.public:
            assert op.scope is None
        elif op.operation_id == "getSubscriptionSecret":  # the secret signs the webhooks
            assert op.scope == "write"
        elif op.method == "GET":
            assert op.scope == "read", op.operation_id
        elif op.operation_id == "publishEvent":
            assert op.scope == "publish"
        else:
            assert op.scope == "write", op.operation_id


def test_a_route_is_public_or_has_a_scope() -> None:
    op = operations(BODIES, {})[0]
    with pytest.raises(ValueError, match="public or needs a scope"):
        dataclasses.replace(op, public=False)


def _fields_of(parse: Callable[[], object]) -> set[str]:
    with pytest.raises(InvalidInput) as caught:
        parse()
    return {e.field for e in caught.value.errors}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["read", "admin"]}, "scopes[1]"),
        ({"scopes": ["read", "read"]}, "scopes[1]"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "read"}, "scopes"),
        ({"expires_in_s": 0}, "expires_in_s"),
        ({"expires_in_s": -5}, "expires_in_s"),
        ({"expires_in_s": 1.5}, "expires_in_s"),
        ({"expires_in_s": float("nan")}, "expires_in_s"),
        ({"expires_in_s": True}, "expires_in_s"),
        ({"expires_in_s": "60"}, "expires_in_s"),
        ({"expires_in_s": MAX_EXPIRES_IN_S + 1}, "expires_in_s"),
        ({"expires_in_s": 10**400}, "expires_in_s"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_a_bad_token_body_names_the_field(body: dict[str, Any], field: str) -> None:
    assert _fields_of(lambda: BODIES.create_token.parse(body)) == {field}


def test_a_token_body_takes_scopes_and_a_lifetime() -> None:
    parsed = BODIES.create_token.parse({"scopes": ["publish", "read"], "expires_in_s": 60.0})
    assert parsed.get(BODIES.token.scopes) == ("read", "publish")
    assert parsed.get(BODIES.token.expires_in_s) == 60
    assert isinstance(parsed.get(BODIES.token.expires_in_s), int)
    assert BODIES.create_token.parse({}).values == {}
    top = BODIES.create_token.parse({"expires_in_s": MAX_EXPIRES_IN_S})
    assert top.get(BODIES.token.expires_in_s) == MAX_EXPIRES_IN_S


def test_the_document_has_the_token_routes_scopes_and_challenge() -> None:
    document = _document()
    tokens = document["paths"]["/v1/tenants/{tenant}/tokens"]
    assert tokens["post"]["requestBody"]["required"] is False
    assert set(
        tokens["post"]["responses"]["201"]["content"]["application/json"]["schema"]["required"]
    ) == {"id", "token", "tenant", "scopes", "created_at", "expires_at"}
    listed = tokens["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "token" not in listed["properties"]["data"]["items"]["properties"]
    assert {p["name"] for p in tokens["get"]["parameters"]} == {"tenant", "limit", "cursor"}
    revoke = document["paths"]["/v1/tenants/{tenant}/tokens/{id}"]["delete"]
    assert {"204", "401", "403", "404"} <= set(revoke["responses"])
    assert revoke["security"] == [{"bearer": ["write"]}]
    assert tokens["get"]["security"] == [{"bearer": ["read"]}]
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"bearer": ["publish"]}]
    challenge = tokens["get"]["responses"]["401"]["headers"]["WWW-Authenticate"]
    assert challenge["required"] is True
    body = document["components"]["schemas"]["TokenCreate"]
    assert body["properties"]["scopes"]["items"]["enum"] == list(SCOPES)
    assert body["properties"]["expires_in_s"]["maximum"] == MAX_EXPIRES_IN_S
