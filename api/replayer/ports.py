"""What the replayer talks to, as the narrow interfaces it uses: built by
`api.replayer.bootstrap` from confluent-kafka, the subscriptions table and PostgreSQL, and by
`tests/fakes.py` in memory, so the unit tests drive the real shell without a broker or a
database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from api.model.history import StoredCommand
from core.records import Subscription
from hookline.runtime.clock import Clock
from hookline.runtime.producing import KafkaProducer
from schemas.records_avro import RecordCodec

OnAssign = Callable[[Any, list[TopicPartition]], None]


class ControlConsumer(Protocol):
    """The part of confluent_kafka.Consumer that reads `control`; rebalance callbacks run
    inside `consume`, which also reports each partition's end (`enable.partition.eof`)."""

    def subscribe(self, topics: list[str], *, on_assign: OnAssign, on_revoke: OnAssign) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...


class EventReader(Protocol):
    """A consumer outside any group reading `events` partition by partition (a replay);
    it reports each partition's end (`enable.partition.eof`)."""

    def list_topics(self, topic: str, timeout: float) -> Any: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float
    ) -> tuple[int, int]: ...

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...

    def close(self) -> None: ...


OpenEventReader = Callable[[], EventReader]
"""A new reader for each replay; the replay closes it."""


class Subscriptions(Protocol):
    """The subscriptions table: caught up once `wait_ready`, then followed; `check` raises
    what stopped it."""

    def wait_ready(self, timeout_s: float) -> bool: ...

    def check(self) -> None: ...

    def wait_for(self, subscription_id: str, *, version: int | None, timeout_s: float) -> bool: ...

    def get(self, subscription_id: str) -> Subscription | None: ...


class History(Protocol):
    """The history tables a recover or replay job reads, over one database connection;
    psycopg.OperationalError when the connection is lost (`broken` after that)."""

    @property
    def broken(self) -> bool: ...

    def recoverable(
        self, subscription_id: str, *, since: datetime, until: datetime, statuses: Sequence[str]
    ) -> list[StoredCommand]: ...

    def attempts_made(self, subscription_id: str, *, since: datetime) -> Mapping[str, int]: ...

    def close(self) -> None: ...


OpenHistory = Callable[[], History]
"""Connects; psycopg.OperationalError while the database is unreachable."""


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the replayer reads, writes and asks, handed to it by the composition root."""

    codec: RecordCodec
    control: ControlConsumer
    open_events: OpenEventReader
    producer: KafkaProducer
    subscriptions: Subscriptions
    open_history: OpenHistory
    clock: Clock
