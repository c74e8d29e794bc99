"""What the router talks to, as the narrow interfaces it uses: built by `router.bootstrap`
from confluent-kafka, the subscriptions table and the system clock, and by `tests/fakes.py`
in memory, so the unit tests drive the real shell without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from core.records import Subscription
from hookline.runtime.clock import Clock
from schemas.records_avro import RecordCodec

OnAssign = Callable[[Any, list[TopicPartition]], None]


class EventConsumer(Protocol):
    """The part of confluent_kafka.Consumer the router uses; rebalance callbacks run inside
    `poll` and `consume`."""

    def subscribe(
        self, topics: list[str], *, on_assign: OnAssign, on_revoke: OnAssign, on_lost: OnAssign
    ) -> None: ...

    def poll(self, timeout: float) -> Any: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def consumer_group_metadata(self) -> Any: ...

    def assignment(self) -> list[TopicPartition]: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, *, cached: bool
    ) -> tuple[int, int] | None: ...

    def list_topics(self, *, timeout: float) -> Any: ...

    def close(self) -> None: ...


class TransactionalProducer(Protocol):
    """The part of a transactional confluent_kafka.Producer the router uses."""

    def init_transactions(self, timeout: float) -> None: ...

    def begin_transaction(self) -> None: ...

    def produce(
        self, topic: str, *, key: str | bytes | None, value: bytes | None, **extra: Any
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None: ...

    def commit_transaction(self, timeout: float) -> None: ...

    def abort_transaction(self, timeout: float) -> None: ...

    def flush(self, timeout: float) -> int: ...


class Clients(Protocol):
    """Builds the Kafka clients of one routing loop: once at start, again whenever the loop
    left broken ones behind (a new producer under the same transactional id fences the old)."""

    def consumer(self) -> EventConsumer: ...

    def producer(self) -> TransactionalProducer: ...


class EndOffsets(Protocol):
    """The end offsets of these partitions, by partition (KafkaException when unknown)."""

    def __call__(self, partitions: list[TopicPartition]) -> Mapping[int, int]: ...


class Subscriptions(Protocol):
    """The subscriptions table: caught up once `wait_ready`, then followed."""

    @property
    def failure(self) -> BaseException | None: ...

    def wait_ready(self, timeout_s: float) -> bool: ...

    def wait_caught_up(self, ends: Mapping[int, int], *, timeout_s: float) -> bool: ...

    def snapshot(self) -> Mapping[str, Subscription]: ...


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the router reads, writes and asks, handed to it by the composition root."""

    codec: RecordCodec
    subscriptions: Subscriptions
    clients: Clients
    end_offsets: EndOffsets
    clock: Clock
