"""Bearer tokens: the admin token sees every tenant with every scope; a tenant token sees
only its own tenant, with the scopes it was given, until it expires or is revoked.

Tenant tokens live on the compacted `hookline.tokens` topic (`api.model.tokens.TokenTable`,
followed by every API process), found by their SHA-256. The Authorization header is read
as the bytes it was sent as, so no value can make authentication fail other than with 401.

Tokens made before they lived on the log are rows of the PostgreSQL table `api_tokens`;
`migrate_legacy_tokens` moves them onto the topic once, at API start, with every scope and
no expiry, so they keep working (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from api.model.errors import Forbidden, InsufficientScope, Unauthorized, Unavailable
from api.model.tokens import TokenTable
from core.records import ApiToken, TokenScope, utc_ms
from core.tokens import SCOPES, hash_token, legacy_token, looks_like_token, refusal, same_token

log = logging.getLogger(__name__)

DEFAULT_TENANT: Final = "default"
_SCHEME: Final = "bearer"
_SPACES: Final = " \t"
SEND_HOW: Final = "send 'Authorization: Bearer <token>'"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin (`tenant` None, every scope) or one tenant's token."""

    tenant: str | None
    scopes: frozenset[TokenScope] = field(default=frozenset(SCOPES))
    token_id: str | None = None

    def can_see(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant

    def tenant_for_write(self, requested: str | None) -> str:
        """The tenant of a record this caller creates; a tenant token names only its own."""
        if self.tenant is None:
            return requested or DEFAULT_TENANT
        if requested is not None and requested != self.tenant:
            raise Forbidden("a tenant token creates records only in its own tenant")
        return self.tenant

    def require_admin(self) -> None:
        if self.tenant is not None:
            raise Forbidden("this route needs the admin token")

    def require_scope(self, scope: TokenScope) -> None:
        if scope not in self.scopes:
            raise InsufficientScope(scope)


def bearer_token(authorization: str | None) -> str:
    """The credentials of an `Authorization: Bearer <token>` header; Unauthorized (no error
    code: no bearer token was sent) for a missing header, another scheme or an empty token."""
    if authorization is None:
        raise Unauthorized(SEND_HOW)
    scheme, _, credentials = authorization.strip(_SPACES).partition(" ")
    token = credentials.strip(_SPACES)
    if scheme.lower() != _SCHEME or not token:
        raise Unauthorized(SEND_HOW)
    return token


class Authenticator:
    """Who a request's Authorization header names; every refusal is Unauthorized (401)."""

    def __init__(
        self,
        find: Callable[[str], ApiToken | None],
        *,
        admin_token: str,
        now: Callable[[], datetime],
    ) -> None:
        """`find` looks a token up by its hash (`TokenTable.find`); `now` is the clock."""
        self._find = find
        self._admin_token = admin_token
        self._now = now

    def authenticate(self, authorization: str | None) -> Principal:
        given = bearer_token(authorization)
        if same_token(given, self._admin_token):
            return Principal(None)
        if not looks_like_token(given):  # cannot be one of ours: no lookup needed
            raise Unauthorized("the token is not known", token_refused=True)
        digest = hash_token(given)
        token = self._find(digest)
        if token is None or not same_token(token.token_hash, digest):
            raise Unauthorized("the token is not known", token_refused=True)
        why = refusal(token, self._now())
        if why is not None:
            raise Unauthorized(why, token_refused=True)
        return Principal(token.tenant, frozenset(token.scopes), token.id)


Send = Callable[[ApiToken], Awaitable[None]]
"""Writes a token's record to the tokens topic and waits for the acknowledgement."""

MIGRATION_READ_BACK_S: Final = 30.0


async def migrate_legacy_tokens(
    pool: AsyncConnectionPool, schema: str, tokens: TokenTable, send: Send
) -> int:
    """Move the rows of the legacy `api_tokens` table onto the tokens topic; how many moved.

    Runs at API start once the tokens table is ready. Serialised across API processes by an
    advisory lock: the rows are read, written to the topic (every scope, no expiry, an id
    derived from the hash), read back by this process's table, and only then deleted, in
    the transaction that holds the lock. A row whose id the table already holds is deleted
    without writing, so a token revoked since it was migrated is never brought back.
    """
    lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
        sql.Literal(f"{schema}.api_tokens")
    )
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(lock)
        found = await (await conn.execute("SELECT to_regclass('api_tokens')")).fetchone()
        if found is None or found[0] is None:
            return 0
        rows = await (
            await conn.execute("SELECT token_hash, tenant, created_at FROM api_tokens")
        ).fetchall()
        if not rows:
            return 0
        moved = [
            legacy_token(str(digest), tenant=str(tenant), created_at=utc_ms(created_at))
            for digest, tenant, created_at in rows
        ]
        fresh = [token for token in moved if tokens.get(token.id) is None]
        await asyncio.gather(*(send(token) for token in fresh))
        for token in fresh:
            seen = await asyncio.to_thread(tokens.wait_for, token, timeout_s=MIGRATION_READ_BACK_S)
            if not seen:
                raise Unavailable(f"legacy token {token.id}: written, but not read back in time")
        await conn.execute(
            "DELETE FROM api_tokens WHERE token_hash = ANY(%s)", [[t.token_hash for t in moved]]
        )
    if fresh:
        log.info("moved %d token(s) from the api_tokens table onto the tokens topic", len(fresh))
    return len(fresh)
