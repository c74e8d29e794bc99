"""Bearer tokens: the admin token sees every tenant; a tenant token only its own.

Tenant tokens are stored as SHA-256 hashes in `api_tokens`; a hash found once is cached (there
is no revocation yet, so a cached entry cannot go stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from psycopg_pool import AsyncConnectionPool

from api.model.errors import Forbidden, Unauthorized
from core.tokens import generate_token, hash_token, same_token

DEFAULT_TENANT: Final = "default"
_SCHEME: Final = "bearer "


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin (`tenant` None) or one tenant."""

    tenant: str | None

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


class TokenStore:
    def __init__(self, pool: AsyncConnectionPool, *, admin_token: str) -> None:
        self._pool = pool
        self._admin_token = admin_token
        self._known: dict[str, str] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        if authorization is None or not authorization.lower().startswith(_SCHEME):
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        token = authorization[len(_SCHEME) :].strip()
        if not token:
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        if not token.isascii():  # bytes that are not UTF-8 arrive as lone surrogates
            raise Unauthorized("the token is not known")
        if same_token(token, self._admin_token):
            return Principal(None)
        digest = hash_token(token)
        tenant = self._known.get(digest)
        if tenant is None:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT tenant FROM api_tokens WHERE token_hash = %s", [digest]
                )
                row = await cursor.fetchone()
            if row is None:
                raise Unauthorized("the token is not known")
            tenant = str(row[0])
            self._known[digest] = tenant
        return Principal(tenant)

    async def create(self, tenant: str) -> str:
        """A new token for `tenant`; only its hash is kept."""
        token = generate_token()
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO api_tokens (token_hash, tenant) VALUES (%s, %s)",
                [hash_token(token), tenant],
            )
        return token
