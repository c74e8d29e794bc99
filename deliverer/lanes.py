"""What a subscription's lane holds: commands (`Item`), its limits, and a concurrency slot."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from core.lanes import PartitionOffsets
from core.records import DeliveryCommand


@dataclass(slots=True, eq=False)
class Item:
    """A command in a lane. `offsets` is set while its Kafka offset is unfinished (read from
    `deliveries`, not yet in the backlog); `key` once it is in the backlog's changelog;
    `leased` while the backlog store lent it to the lane. `value` is the command as encoded
    (as read), `command` the decoded one once a lane needs it."""

    subscription_id: str
    value: bytes
    partition: int
    seq: int
    queued_at: float
    created_ms: int
    due_ms: int = 0
    command: DeliveryCommand | None = None
    offsets: PartitionOffsets | None = None
    key: str | None = None
    leased: bool = False


@dataclass(slots=True, eq=False)
class Lane:
    subscription_id: str
    ordered: bool
    concurrency: int
    rate_limit: float | None = None
    queue: deque[Item] = field(default_factory=deque)
    running: int = 0
    resume_ms: int = 0
    """The endpoint asked (Retry-After) that nothing is sent before this wall-clock time."""

    @property
    def depth(self) -> int:
        return len(self.queue) + self.running


class Slot:
    """A lane's concurrency slot, released once: after the HTTP attempt, or when the task ends."""

    __slots__ = ("_on_release",)

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release: Callable[[], None] | None = on_release

    def release(self, _task: object = None) -> None:
        if self._on_release is not None:
            on_release, self._on_release = self._on_release, None
            on_release()
