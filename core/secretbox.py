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
