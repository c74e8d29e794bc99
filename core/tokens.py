"""API tokens: tenant tokens are 256 random bits, stored only as their SHA-256 hash.

A fast hash is right here: the tokens are high-entropy, so a leaked table reveals none of them
and nothing is gained from a slow password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

from core.errors import InvalidField

TOKEN_PREFIX: Final = "hl_"  # noqa: S105 - a format prefix, not a password
TOKEN_BYTES: Final = 32
TENANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)


def generate_token() -> str:
    """A fresh tenant token: ``hl_`` + 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, the only form that is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with a known one."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_tenant(tenant: str, *, field: str = "tenant") -> str:
    """A tenant name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not _TENANT.fullmatch(tenant):
        raise InvalidField(field, "expected 1-64 letters, digits, '.', '_' or '-'")
    return tenant
