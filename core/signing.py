"""Standard Webhooks signing: ``whsec_`` secrets and ``v1,<base64 HMAC-SHA256>`` signatures.

The signed content is ``"<msg_id>.<timestamp_s>."`` followed by the exact body bytes sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from secrets import token_bytes
from typing import Final

from core.errors import InvalidSecret, SignatureMismatch, TimestampOutOfTolerance

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a password
SECRET_SIZE_BYTES: Final = 32
# Standard Webhooks recommends keys of 24 to 64 bytes; imported secrets may differ from ours.
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300


def generate_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 bytes from the OS CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_SIZE_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret; strict about prefix, alphabet, padding, size."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"must start with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidSecret("the part after the prefix is not padded standard base64") from exc
    if base64.b64encode(key).decode("ascii") != encoded:
        raise InvalidSecret("the base64 is not in canonical form")
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"decodes to {len(key)} bytes; expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}"
        )
    return key


def _digest(key: bytes, *, msg_id: str, timestamp_s: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(*, msg_id: str, timestamp_s: int, body: bytes, secrets: Sequence[str]) -> str:
    """The webhook-signature header: one ``v1,<base64>`` per secret, space-separated.

    Several secrets are passed while a secret is being rotated, so both old and new verify.
    """
    if not secrets:
        raise InvalidSecret("at least one secret is needed to sign")
    signatures = (
        _digest(decode_secret(secret), msg_id=msg_id, timestamp_s=timestamp_s, body=body)
        for secret in secrets
    )
    return " ".join(
        f"{SIGNATURE_VERSION},{base64.b64encode(signature).decode('ascii')}"
        for signature in signatures
    )


def verify(
    *,
    msg_id: str,
    timestamp_s: int,
    body: bytes,
    signature_header: str,
    secret: str,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a received webhook; raise TimestampOutOfTolerance or SignatureMismatch if bad.

    Entries with another version or malformed base64 are skipped, as the spec asks.
    """
    if abs(now_s - timestamp_s) > tolerance_s:
        raise TimestampOutOfTolerance(timestamp_s, now_s, tolerance_s)
    expected = _digest(decode_secret(secret), msg_id=msg_id, timestamp_s=timestamp_s, body=body)
    for entry in signature_header.split(" "):
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    raise SignatureMismatch(msg_id)
