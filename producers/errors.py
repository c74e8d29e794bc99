"""Errors of the producers library, split by what the caller should do.

PublishError  (a core.errors.HooklineError, as every package's root is)
 ├── InvalidEvent         the event breaks its type's schema: fix the call; nothing was sent
 │                        (also a schemas.errors.InvalidEventData; `field` names the culprit)
 ├── UnknownType          no schema for the event type: fix the call; nothing was sent
 │                        (also a schemas.errors.UnknownEventType)
 ├── PublishFailed        Kafka refused the event or did not acknowledge it in time; publishing
 │    │                   again with the same `event_id` is safe (consumers dedupe on it)
 │    └── PublishTimeout  no acknowledgement within the deadline
 ├── PublisherUnavailable the publisher cannot start: a topic it needs is missing (run
 │                        `hookline topics ensure`) or Kafka cannot be read; nothing was sent
 ├── PublisherClosed      publish after close
 └── OutboxError          the outbox relay could not read or mark its table
"""

from __future__ import annotations

from core.errors import HooklineError
from schemas.errors import InvalidEventData, UnknownEventType


class PublishError(HooklineError):
    """Root of the producers library's errors."""


class InvalidEvent(PublishError, InvalidEventData):
    """The event's `data` (or id, or timestamp) breaks its schema; `field` is its path."""


class UnknownType(PublishError, UnknownEventType):
    """The event type has no schema in the catalog."""


class PublishFailed(PublishError):
    def __init__(self, event_id: str, topic: str, reason: str) -> None:
        super().__init__(f"event {event_id} to {topic}: {reason}")
        self.event_id = event_id
        self.topic = topic
        self.reason = reason


class PublishTimeout(PublishFailed):
    def __init__(self, event_id: str, topic: str, timeout_s: float) -> None:
        super().__init__(event_id, topic, f"not acknowledged within {timeout_s:g} s")
        self.timeout_s = timeout_s


class PublisherUnavailable(PublishError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot publish: {reason}")
        self.reason = reason


class PublisherClosed(PublishError):
    def __init__(self) -> None:
        super().__init__("the publisher is closed")


class OutboxError(PublishError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"outbox: {reason}")
        self.reason = reason
