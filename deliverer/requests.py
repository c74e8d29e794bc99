"""The webhook request of one attempt: headers signed with every valid secret, decrypted only
in memory (cached per subscription until its secrets change, it stops being active, or it is
the least recently used of `MAX_CACHED` subscriptions)."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Final

from core.records import DeliveryCommand, StoredSecret, Subscription
from core.secretbox import SecretBox
from core.signing import sign
from core.webhook import webhook_headers
from hookline import __version__

MAX_CACHED: Final = 10_000
"""Subscriptions whose decrypted secrets are kept: memory stays bounded however many
subscriptions a process ever delivers to; a miss costs one AES-GCM decryption."""


class SigningKeys:
    """Decrypted `whsec_` secrets by subscription; never written anywhere."""

    def __init__(self, box: SecretBox, *, max_cached: int = MAX_CACHED) -> None:
        self._box = box
        self._max_cached = max_cached
        self._cache: OrderedDict[
            str, tuple[tuple[StoredSecret, ...], tuple[tuple[str, datetime | None], ...]]
        ] = OrderedDict()

    def valid(self, subscription: Subscription, now: datetime) -> list[str]:
        """The current secret and any previous one not yet expired, current first.

        Raises core.errors.InvalidSecret when a secret does not decrypt.
        """
        cached = self._cache.get(subscription.id)
        if cached is None or cached[0] != subscription.secrets:
            opened = tuple(
                (self._box.open(s.ciphertext, subscription_id=subscription.id), s.expires_at)
                for s in subscription.secrets
            )
            cached = (subscription.secrets, opened)
            self._cache[subscription.id] = cached
        self._cache.move_to_end(subscription.id)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
        ordered = sorted(cached[1], key=lambda pair: pair[1] is not None)
        return [secret for secret, expires in ordered if expires is None or expires > now]

    def forget(self, subscription_id: str) -> None:
        """Drop a subscription's secrets (it was deleted, disabled or paused): decrypted
        secrets stay in memory no longer than they may be used."""
        self._cache.pop(subscription_id, None)

    def __len__(self) -> int:
        return len(self._cache)


def request_headers(
    subscription: Subscription, command: DeliveryCommand, *, secrets: list[str]
) -> dict[str, str]:
    """Standard Webhooks headers for this attempt: timestamp now, webhook-id = event id.

    Raises InvalidSecret (nothing to sign with) or InvalidCustomHeader.
    """
    timestamp_s = int(time.time())
    signature = sign(
        msg_id=command.event_id, timestamp_s=timestamp_s, body=command.payload, secrets=secrets
    )
    return webhook_headers(
        msg_id=command.event_id,
        timestamp_s=timestamp_s,
        signature=signature,
        version=__version__,
        custom=subscription.headers,
    )
