"""Errors of the deliverer, split by what the caller should do.

DelivererError  (a core.errors.HooklineError, as every package's root is)
 ├── RefusedAddress       the SSRF guard refused a resolved or connected address: fail the
 │                        attempt (an OSError too, so it travels through aiohttp's connector)
 ├── OutputLost           Kafka did not acknowledge an output record: stop the process loudly,
 │                        the command's offset stays uncommitted and is re-read after restart
 └── SubscriptionsUnavailable  the subscriptions table never became ready: stop start-up
"""

from __future__ import annotations

from core.errors import HooklineError


class DelivererError(HooklineError):
    """Root of the deliverer's errors."""


class RefusedAddress(DelivererError, OSError):
    """The guard refused `address` (of `host`) for `reason`."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"target {host!r} refused: {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class OutputLost(DelivererError):
    """An attempt, retry or dead-letter record was not acknowledged by Kafka."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"output to {topic} not acknowledged: {reason}")
        self.topic = topic
        self.reason = reason


class SubscriptionsUnavailable(DelivererError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"subscriptions table: {reason}")
        self.reason = reason
