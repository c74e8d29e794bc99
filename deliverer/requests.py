"""The webhook request of one attempt: headers signed with every valid secret, with the custom
header values, all decrypted only in memory (cached per subscription until its secrets or
headers change, it stops being active, or it is the least recently used of `MAX_CACHED`
subscriptions)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from core.records import DeliveryCommand, StoredSecret, Subscription, TraceContext
from core.secretbox import SecretBox
from core.signing import sign
from core.webhook import webhook_headers
from hookline import __version__

MAX_CACHED: Final = 10_000
"""Subscriptions whose decrypted secrets are kept: memory stays bounded however many
subscriptions a process ever delivers to; a miss costs one AES-GCM decryption."""


@dataclass(frozen=True, slots=True)
class Opened:
    """What one attempt needs decrypted: the valid `whsec_` secrets (current first) and the
    custom headers with their values in clear."""

    secrets: list[str]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Cached:
    secrets: tuple[StoredSecret, ...]
    sealed_headers: Mapping[str, bytes]
    opened_secrets: tuple[tuple[str, datetime | None], ...]
    opened_headers: Mapping[str, str]


class SigningKeys:
    """Decrypted secrets and custom header values by subscription; never written anywhere."""

    def __init__(self, box: SecretBox, *, max_cached: int = MAX_CACHED) -> None:
        self._box = box
        self._max_cached = max_cached
        self._cache: OrderedDict[str, _Cached] = OrderedDict()

    def valid(self, subscription: Subscription, now: datetime) -> Opened:
        """The current secret and any previous one not yet expired, current first, and the
        custom headers (clear values of records older than sealing, then the opened ones).

        Raises core.errors.InvalidSecret when a secret or a header value does not decrypt.
        """
        cached = self._cache.get(subscription.id)
        if (
            cached is None
            or cached.secrets != subscription.secrets
            or cached.sealed_headers != subscription.sealed_headers
        ):
            cached = self._open(subscription)
            self._cache[subscription.id] = cached
        self._cache.move_to_end(subscription.id)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
        ordered = sorted(cached.opened_secrets, key=lambda pair: pair[1] is not None)
        secrets = [secret for secret, expires in ordered if expires is None or expires > now]
        return Opened(secrets, {**subscription.headers, **cached.opened_headers})

    def _open(self, subscription: Subscription) -> _Cached:
        return _Cached(
            secrets=subscription.secrets,
            sealed_headers=subscription.sealed_headers,
            opened_secrets=tuple(
                (self._box.open(s.ciphertext, subscription_id=subscription.id), s.expires_at)
                for s in subscription.secrets
            ),
            opened_headers={
                name: self._box.open_header(sealed, subscription_id=subscription.id, name=name)
                for name, sealed in subscription.sealed_headers.items()
            },
        )

    def forget(self, subscription_id: str) -> None:
        """Drop a subscription's secrets (it was deleted, disabled or paused): decrypted
        secrets stay in memory no longer than they may be used."""
        self._cache.pop(subscription_id, None)

    def __len__(self) -> int:
        return len(self._cache)


def request_headers(
    subscription: Subscription,
    command: DeliveryCommand,
    *,
    body: bytes,
    secrets: Opened,
    trace: TraceContext | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for this attempt: timestamp now, webhook-id = event id, the
    signature over `body` (the exact bytes sent, in the subscription's content type), the
    subscription's custom headers as `secrets` opened them, and the attempt's trace context
    (`trace`: the attempt's span, else the command's own).

    Raises InvalidSecret (nothing to sign with) or InvalidCustomHeader.
    """
    timestamp_s = int(time.time())
    signature = sign(
        msg_id=command.event_id,
        timestamp_s=timestamp_s,
        body=body,
        secrets=secrets.secrets,
    )
    return webhook_headers(
        msg_id=command.event_id,
        timestamp_s=timestamp_s,
        signature=signature,
        version=__version__,
        custom=secrets.headers,
        content_type=subscription.content_type,
        traceparent=trace.traceparent if trace is not None else command.trace,
        tracestate=trace.tracestate if trace is not None else command.tracestate,
    )
