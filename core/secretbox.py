"""Signing secrets and custom header values encrypted at rest: AES-256-GCM under
HOOKLINE_SECRET_KEY.

The subscription id is the associated data (with the header's name, for a header value), so
a ciphertext copied onto another subscription, another header, or from a header into the
secrets does not decrypt.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import InvalidSecret

NONCE_BYTES = 12
KEY_BYTES = 32
MIN_DISTINCT_BYTES = 16
MAX_PATTERN_BYTES = 16
PRINTABLE = range(0x20, 0x7F)


def key_weakness(key: bytes) -> str | None:
    """Why `key` cannot be random bytes, or None when it may be.

    32 random bytes hold about 30 different values. Fewer than 16, a pattern of up to 16
    bytes repeated, or nothing but printable ASCII (the base64 of a typed passphrase) each
    comes by chance less than once in 10**13 keys: a key showing one was made by hand.
    """
    distinct = len(set(key))
    if distinct < MIN_DISTINCT_BYTES:
        return f"only {distinct} different byte values"
    for period in range(1, MAX_PATTERN_BYTES + 1):
        if key[period:] == key[:-period]:
            return f"a pattern of {period} bytes repeated"
    if all(byte in PRINTABLE for byte in key):
        return "printable text, not random bytes"
    return None


def _header_context(subscription_id: str, name: str) -> bytes:
    """Associated data of a header value: never equal to a bare subscription id (a secret's),
    and header names are case-insensitive."""
    return f"{subscription_id}\x00header\x00{name.lower()}".encode()


@dataclass(frozen=True, slots=True)
class SecretBox:
    key: bytes

    @classmethod
    def from_base64(cls, text: str) -> SecretBox:
        key = base64.b64decode(text, validate=True)
        if len(key) != 32:
            raise InvalidSecret("the secret key must be 32 bytes")
        return cls(key)

    def seal(self, secret: str, *, subscription_id: str) -> bytes:
        return self._seal(secret, subscription_id.encode())

    def open(self, ciphertext: bytes, *, subscription_id: str) -> str:
        what = f"the secret of subscription {subscription_id}"
        return self._open(ciphertext, subscription_id.encode(), what)

    def seal_header(self, value: str, *, subscription_id: str, name: str) -> bytes:
        return self._seal(value, _header_context(subscription_id, name))

    def open_header(self, ciphertext: bytes, *, subscription_id: str, name: str) -> str:
        what = f"header {name!r} of subscription {subscription_id}"
        return self._open(ciphertext, _header_context(subscription_id, name), what)

    def _seal(self, plain: str, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plain.encode(), context)

    def _open(self, ciphertext: bytes, context: bytes, what: str) -> str:
        nonce, sealed = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
        try:
            plain = AESGCM(self.key).decrypt(nonce, sealed, context)
        except InvalidTag:
            raise InvalidSecret(f"cannot decrypt {what}: wrong key or data") from None
        return plain.decode()

    def __repr__(self) -> str:
        return "SecretBox(key='****')"
