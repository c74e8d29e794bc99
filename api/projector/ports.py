"""What the projector talks to, as the narrow interfaces it uses: built by
`api.projector.bootstrap` from confluent-kafka and PostgreSQL, and by `tests/fakes.py` in
memory, so the unit tests drive the real shell without a broker or a database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from api.projector.projection import AttemptInsert, DeliveryUpsert, Offset
from hookline.runtime.producing import KafkaProducer
from schemas.records_avro import RecordCodec

OnAssign = Callable[[Any, list[TopicPartition]], None]


class RecordConsumer(Protocol):
    """The part of confluent_kafka.Consumer the projector uses; rebalance callbacks run
    inside `consume`, which also reports each partition's end (`enable.partition.eof`)."""

    def subscribe(self, topics: list[str], *, on_assign: OnAssign, on_revoke: OnAssign) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...

    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...

    def assignment(self) -> list[TopicPartition]: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def close(self) -> None: ...


class History(Protocol):
    """The history tables over one database connection; psycopg.OperationalError when the
    connection is lost (`api.projector.projection.PostgresHistory`)."""

    def stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]: ...

    def apply_batch(
        self,
        upserts: Sequence[DeliveryUpsert],
        attempts: Sequence[AttemptInsert],
        offsets: Sequence[Offset],
    ) -> None: ...

    def rebuild(self) -> None: ...

    def close(self) -> None: ...


OpenHistory = Callable[[], History]
"""Connects; psycopg.OperationalError while the database is unreachable."""


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the projector reads and writes, handed to it by the composition root."""

    codec: RecordCodec
    consumer: RecordConsumer
    producer: KafkaProducer
    open_history: OpenHistory
