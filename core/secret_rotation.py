"""Which signing secrets a subscription keeps when its secret is rotated.

A rotation makes a new current secret and gives the old current one an expiry; secrets of an
earlier rotation that are still within their own window stay until then, so a receiver still
verifying with any of them is not cut off by a second rotation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from core.records import StoredSecret

DEFAULT_OVERLAP: Final = timedelta(hours=24)
MAX_OVERLAP: Final = timedelta(days=7)


def rotated(
    secrets: tuple[StoredSecret, ...], new: StoredSecret, *, now: datetime, overlap: timedelta
) -> tuple[StoredSecret, ...]:
    """`new` (current) first, then the previous current secret valid for `overlap` more, then
    the older ones not yet expired, each with its own expiry. An expired secret, or the
    previous one given no overlap, is dropped: it would never sign again."""
    if new.expires_at is not None:
        raise ValueError("the new secret must be current (no expiry)")
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValueError(f"overlap {overlap} is outside 0 to {MAX_OVERLAP}")
    kept = [
        StoredSecret(s.ciphertext, now + overlap) if s.expires_at is None else s for s in secrets
    ]
    return (new, *(s for s in kept if s.expires_at is not None and s.expires_at > now))
