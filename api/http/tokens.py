"""Handlers of `/v1/tenants/{tenant}/tokens` (admin only): create, list and revoke.

A token's record goes to the compacted tokens topic (acks=all), and the answer waits until
this process's tokens table has read it back, so the token works here (or, revoked, is
refused here) from the answer on; every other API process follows the same topic within
milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime

from aiohttp import web

from api.http.bodies import DEFAULT_LIMIT
from api.http.context import (
    READ_BACK_TIMEOUT_S,
    answer,
    bodies,
    caller,
    read_json,
    read_query,
    resources,
    settings,
)
from api.http.views import token_view
from api.model.errors import NotFound, Unavailable
from api.model.tokens import page_of_tokens
from core.cursors import decode_cursor, encode_cursor
from core.records import ApiToken, utc_ms
from core.tokens import SCOPES, check_tenant, new_token


async def _admin_and_tenant(request: web.Request) -> str:
    """The path's tenant, once the caller is known to be the admin (403) and the name valid
    (422 naming `tenant`)."""
    who = await caller(request)
    who.require_admin()
    return check_tenant(request.match_info["tenant"])


async def _write(request: web.Request, token: ApiToken) -> None:
    res = resources(request)
    await res.producer.send(
        settings(request).topic("tokens"), key=token.id, value=res.codec.codec.encode_token(token)
    )
    seen = await asyncio.to_thread(res.tokens.wait_for, token, timeout_s=READ_BACK_TIMEOUT_S)
    if not seen:
        raise Unavailable(f"token {token.id}: written, but not read back in time")


async def create(request: web.Request) -> web.Response:
    """A new token, shown once: every scope and no expiry unless the body says otherwise."""
    tenant = await _admin_and_tenant(request)
    spec = bodies(request)
    parsed = spec.create_token.parse(await read_json(request, optional=True))
    secret, token = new_token(
        token_id=str(uuid.uuid4()),
        tenant=tenant,
        scopes=parsed.get_or(spec.token.scopes, SCOPES),
        now=utc_ms(datetime.now(UTC)),
        expires_in_s=parsed.get_or(spec.token.expires_in_s, None),
    )
    await _write(request, token)
    return answer(token_view(token, secret=secret), status=201)


async def list_all(request: web.Request) -> web.Response:
    """The tenant's tokens not revoked (expired ones too), oldest first, without the token."""
    tenant = await _admin_and_tenant(request)
    spec = bodies(request)
    query = read_query(request, (spec.limit, spec.cursor))
    cursor = query.get(spec.cursor.name)
    after = None if cursor is None else decode_cursor(str(cursor), arity=2)
    page, last = page_of_tokens(
        resources(request).tokens.snapshot().values(),
        tenant=tenant,
        limit=int(str(query.get(spec.limit.name, DEFAULT_LIMIT))),
        after=None if after is None else (after[0], after[1]),
    )
    next_cursor = None if last is None else encode_cursor(last)
    return answer({"data": [token_view(t) for t in page], "next_cursor": next_cursor})


async def revoke(request: web.Request) -> web.Response:
    """Revoke a token: refused by this process from the answer on, by every API process
    within milliseconds. An unknown id, another tenant's or a revoked one answers 404."""
    tenant = await _admin_and_tenant(request)
    token_id = request.match_info["id"]
    token = resources(request).tokens.get(token_id)
    if token is None or token.tenant != tenant or token.revoked_at is not None:
        raise NotFound("token", token_id)
    now = utc_ms(datetime.now(UTC))
    await _write(request, dataclasses.replace(token, revoked_at=max(now, token.created_at)))
    return web.Response(status=204)
