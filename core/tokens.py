"""API tokens: tenant tokens are 256 random bits, stored only as their SHA-256 hash.

A fast hash is right here: the tokens are high-entropy, so a leaked table reveals none of them
and nothing is gained from a slow password hash. For the same reason finding a token by its
hash in a dictionary leaks nothing useful through timing (an attacker controls the token, not
the hash, and learning bits of a stored hash does not help find a token that hashes to it);
the comparisons of a presented secret with a known one are constant-time (`same_token`).

A token has scopes (`read`, `write`, `publish`), may expire, and may be revoked; `refusal`
says why a token found by its hash may no longer be used.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Final, get_args

from core.errors import InvalidField
from core.records import ApiToken, TokenScope

TOKEN_PREFIX: Final = "hl_"  # noqa: S105 - a format prefix, not a password
TOKEN_BYTES: Final = 32
TENANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)
TOKEN_PATTERN: Final = r"^hl_[A-Za-z0-9_-]{1,100}$"  # noqa: S105 - a format, not a password
"""What a tenant token looks like; anything else cannot be one and is refused unhashed."""
_TOKEN = re.compile(TOKEN_PATTERN)

SCOPES: Final[tuple[TokenScope, ...]] = get_args(TokenScope)
"""`read` (every GET), `write` (every other change), `publish` (publishing events)."""
MAX_EXPIRES_IN_S: Final = 10 * 365 * 24 * 3600
"""The longest lifetime a token may be given: ten years (of 365 days)."""
_LEGACY_IDS: Final = uuid.UUID("5f0c4c8e-6f1b-4d55-9a55-3f3e9d1a7b21")
"""The namespace of the ids given to tokens migrated from the `api_tokens` table."""


def generate_token() -> str:
    """A fresh tenant token: ``hl_`` + 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_bytes(text: str) -> bytes:
    """The bytes a token was sent as. Header values and environment variables reach Python
    decoded with `surrogateescape`, so any bytes round-trip; no text makes this raise."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no decoding produced: keep it distinct
        return text.encode("utf-8", "surrogatepass")


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, the only form that is stored."""
    return hashlib.sha256(token_bytes(token)).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with a known one."""
    return hmac.compare_digest(token_bytes(given), token_bytes(expected))


def looks_like_token(text: str) -> bool:
    """True when `text` has the form of a tenant token (``hl_`` + URL-safe base64)."""
    return _TOKEN.fullmatch(text) is not None


def check_tenant(tenant: str, *, field: str = "tenant") -> str:
    """A tenant name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not _TENANT.fullmatch(tenant):
        raise InvalidField(field, "expected 1-64 letters, digits, '.', '_' or '-'")
    return tenant


def new_token(
    *,
    token_id: str,
    tenant: str,
    scopes: tuple[TokenScope, ...],
    now: datetime,
    expires_in_s: int | None,
) -> tuple[str, ApiToken]:
    """A fresh token (shown once) and the record kept of it (its hash, never the token)."""
    token = generate_token()
    expires_at = None if expires_in_s is None else now + timedelta(seconds=expires_in_s)
    return token, ApiToken(
        id=token_id,
        token_hash=hash_token(token),
        tenant=tenant,
        scopes=tuple(s for s in SCOPES if s in scopes),
        created_at=now,
        expires_at=expires_at,
    )


def legacy_token(token_hash: str, *, tenant: str, created_at: datetime) -> ApiToken:
    """The record of a token made before tokens had scopes and lived on the log (a row of the
    `api_tokens` table): every scope, no expiry, and an id that only its hash decides, so
    processes migrating it at once write the same record."""
    return ApiToken(
        id=str(uuid.uuid5(_LEGACY_IDS, token_hash)),
        token_hash=token_hash,
        tenant=tenant,
        scopes=SCOPES,
        created_at=created_at,
    )


def refusal(token: ApiToken, now: datetime) -> str | None:
    """Why `token` may not be used at `now`; None when it may."""
    if token.revoked_at is not None:
        return "the token was revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "the token has expired"
    return None


def stays_revoked(previous: ApiToken | None, record: ApiToken) -> ApiToken:
    """The token once `record` of it is read: a revoked token stays revoked, so a record
    written later without `revoked_at` (a migration racing a revoke) changes nothing."""
    if previous is not None and previous.revoked_at is not None:
        return previous
    return record
