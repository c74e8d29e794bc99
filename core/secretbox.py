"""Signing secrets encrypted at rest: AES-256-GCM under HOOKLINE_SECRET_KEY.

The subscription id is the associated data, so a ciphertext copied onto another subscription
does not decrypt.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import InvalidSecret

NONCE_BYTES = 12


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
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, secret.encode(), subscription_id.encode())
        return nonce + sealed

    def open(self, ciphertext: bytes, *, subscription_id: str) -> str:
        nonce, sealed = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
        try:
            plain = AESGCM(self.key).decrypt(nonce, sealed, subscription_id.encode())
        except InvalidTag:
            raise InvalidSecret(
                f"cannot decrypt the secret of subscription {subscription_id}: wrong key or data"
            ) from None
        return plain.decode()

    def __repr__(self) -> str:
        return "SecretBox(key='****')"
