"""What the deliverer talks to, as the narrow interfaces it uses: built by `deliverer.bootstrap`
from confluent-kafka, aiohttp, the subscriptions table and the system clock, and by
`tests/fakes.py` in memory, so the unit tests drive the real shell without a broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import KafkaError, TopicPartition

from core.records import Subscription
from deliverer.backlog import Restored
from deliverer.sender import Attempted
from hookline.runtime.clock import Clock
from hookline.runtime.producing import KafkaProducer
from schemas.records_avro import RecordCodec

OnAssign = Callable[[Any, list[TopicPartition]], None]
OnCommit = Callable[[KafkaError | None, list[TopicPartition]], None]


class KafkaConsumer(Protocol):
    """The part of confluent_kafka.Consumer the deliverer uses. Rebalance callbacks and
    the `on_commit` reports of its configuration are served inside `consume`."""

    def subscribe(
        self, topics: list[str], *, on_assign: OnAssign, on_revoke: OnAssign, on_lost: OnAssign
    ) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...

    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: bool
    ) -> list[TopicPartition] | None: ...

    def list_topics(self, topic: str, timeout: float) -> Any: ...

    def close(self) -> None: ...


class HttpSender(Protocol):
    """Posts one webhook within a deadline (`deliverer.sender.Sender`)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, deadline_s: float
    ) -> Attempted: ...


class Subscriptions(Protocol):
    """The subscriptions as the compacted table knows them, once it caught up (`ready`)."""

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> BaseException | None: ...

    def get(self, subscription_id: str) -> Subscription | None: ...


class SubscriptionWriter(Protocol):
    """Writes a subscription back (disabling it)."""

    def put(self, subscription: Subscription) -> None: ...


class RestoreBacklog(Protocol):
    """Reads one changelog partition into the store at `path` (`deliverer.backlog.restore`);
    None when cancelled."""

    def __call__(
        self, path: Path, topic: str, partition: int, *, cancelled: threading.Event
    ) -> Restored | None: ...


class CommitReports:
    """Where the consumers report their commits (their `on_commit`, served inside `consume`).

    The consumers are configured with it before `KafkaIO` exists, so it only keeps the
    reports until `KafkaIO` reads them after each `consume`."""

    def __init__(self) -> None:
        self._reports: list[tuple[KafkaError | None, list[TopicPartition]]] = []

    def report(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        self._reports.append((error, partitions))

    def take(self) -> Sequence[tuple[KafkaError | None, list[TopicPartition]]]:
        reports, self._reports = self._reports, []
        return reports


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the deliverer reads, writes and asks, handed to `DeliveryLoop` by the
    composition root. The consumers report their commits to `commits` (their `on_commit`)."""

    codec: RecordCodec
    subscriptions: Subscriptions
    subscription_log: SubscriptionWriter
    consumer: KafkaConsumer
    tier_consumer: KafkaConsumer
    producer: KafkaProducer
    commits: CommitReports
    sender: HttpSender
    restore: RestoreBacklog
    clock: Clock
    store_path: Path
