"""What the deliverer writes, and the callback once Kafka acknowledged it.

Attempt records, dead letters, backlog changelog records (puts and tombstones) and legacy
tier records forwarded to `deliveries` all go through `Outputs.write_then`: produce, count
what is unacknowledged, call `then()` once every record of the batch is acknowledged. A
record Kafka refuses for good becomes `failure` (OutputLost), which stops the process: the
command's offset is never finished, so it is re-read after the restart.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from confluent_kafka import KafkaError, Message
from prometheus_client import Counter as MetricCounter

from core.attempts import Plan
from core.records import epoch_ms, utc_ms
from core.undecodable import Source, undecodable_letter
from deliverer.backlog import Entry, Taken
from deliverer.errors import OutputLost
from deliverer.kafka_io import DUE_HEADER, KafkaIO
from deliverer.metrics import DelivererMetrics
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

Headers: TypeAlias = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce; no partition lets the partitioner choose by key."""

    topic: str
    key: str | bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """Output topic names, resolved once."""

    attempts: str
    dead_letters: str
    deliveries: str
    backlog: str

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        return cls(
            attempts=settings.topic("attempts"),
            dead_letters=settings.topic("dead-letters"),
            deliveries=settings.topic("deliveries"),
            backlog=settings.topic("deliverer-backlog"),
        )


class Outputs:
    def __init__(
        self, settings: Settings, *, io: KafkaIO, codec: RecordCodec, metrics: DelivererMetrics
    ) -> None:
        self.topics = Topics.of(settings)
        self._io = io
        self._codec = codec
        self._metrics = metrics
        self._attempt_counters: dict[str, MetricCounter] = {}
        self._tenant_counters: dict[tuple[str, str], MetricCounter] = {}
        self.unacknowledged = 0
        """Batches produced whose records Kafka has not all acknowledged yet."""
        self.failure: OutputLost | None = None

    # -- records -------------------------------------------------------------------------------

    def of_plan(self, plan: Plan) -> list[Record]:
        """The plan's attempt record and dead letter, encoded; counts them in the metrics."""
        records: list[Record] = []
        codec, topics = self._codec, self.topics
        if plan.attempt is not None:
            value = codec.encode_delivery_attempt(plan.attempt)
            records.append(Record(topics.attempts, plan.attempt.delivery_id, value))
            self._attempts_counter(plan.attempt.outcome).inc()
            self._tenant_counter(plan.attempt.tenant, plan.attempt.outcome).inc()
        if plan.dead_letter is not None:
            value = codec.encode_dead_letter(plan.dead_letter)
            records.append(Record(topics.dead_letters, plan.dead_letter.subscription_id, value))
            self._metrics.dead_letters.labels(plan.dead_letter.reason).inc()
        return records

    def put(self, entry: Entry) -> Record:
        return Record(self.topics.backlog, entry.key, entry.value, entry.partition, entry.headers())

    def tombstone(self, partition: int, key: str) -> Record:
        return Record(self.topics.backlog, key, None, partition)

    def undecodable_entry(self, sub_id: str, row: Taken, error: UndecodableRecord) -> list[Record]:
        """A backlog entry that cannot be decoded: its dead letter and its tombstone."""
        source = Source(self.topics.deliveries, row.partition, row.seq, sub_id.encode())
        return [
            self._undecodable(source, row.value, error, subscription_id=sub_id),
            self.tombstone(row.partition, row.key),
        ]

    def undecodable_record(self, message: Message, error: UndecodableRecord) -> list[Record]:
        """A `deliveries` record that cannot be decoded: its dead letter, with coordinates."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        assert partition is not None
        assert offset is not None
        source = Source(topic, partition, offset, message.key())
        return [self._undecodable(source, message.value(), error, subscription_id=None)]

    def _undecodable(
        self,
        source: Source,
        raw_value: bytes | None,
        error: UndecodableRecord,
        *,
        subscription_id: str | None,
    ) -> Record:
        located = error.at(source.topic, source.partition, source.offset)
        log.error("deliverer: %s", located)
        dead = undecodable_letter(
            source,
            raw_value,
            reason=error.dead_letter_reason,
            error=str(located),
            letter_id=str(uuid.uuid4()),
            at=utc_ms(datetime.now(UTC)),
            subscription_id=subscription_id,
        )
        self._metrics.dead_letters.labels(dead.letter.reason).inc()
        return Record(
            self.topics.dead_letters, dead.key, self._codec.encode_dead_letter(dead.letter)
        )

    def forwarded(self, message: Message) -> list[Record]:
        """A legacy retry-tier record, to `deliveries`: where a command not yet due is
        backlogged by whoever owns its partition (its due time in a header)."""
        value = message.value() or b""
        try:
            due = self._codec.decode_delivery_command(value).not_before
        except UndecodableRecord:
            due = None  # forwarded as it is: `deliveries` dead-letters it with its coordinates
        key = message.key()
        headers = None if due is None else [(DUE_HEADER, str(epoch_ms(due)).encode())]
        return [
            Record(
                self.topics.deliveries,
                None if key is None else key.decode(errors="replace"),
                value,
                headers=headers,
            )
        ]

    # -- writing -------------------------------------------------------------------------------

    def write_then(self, records: list[Record], then: Callable[[], None]) -> None:
        """Produce the records; `then()` once every one is acknowledged."""
        if not records:
            then()
            return
        pending = len(records)
        self.unacknowledged += 1

        def acked(error: KafkaError | None) -> None:
            nonlocal pending
            if error is not None:
                if self.failure is None:
                    self.failure = OutputLost(records[0].topic, error.str())
                return
            pending -= 1
            if pending == 0:
                then()  # first: a write it starts counts before this one stops counting
                self.unacknowledged -= 1

        for record in records:
            self._io.produce(
                record.topic,
                record.key,
                record.value,
                acked,
                partition=record.partition,
                headers=record.headers,
            )

    def _attempts_counter(self, outcome: str) -> MetricCounter:
        child = self._attempt_counters.get(outcome)
        if child is None:
            child = self._attempt_counters[outcome] = self._metrics.attempts.labels(outcome)
        return child

    def _tenant_counter(self, tenant: str, outcome: str) -> MetricCounter:
        """The tenant's series, looked up once: as many as the tenants with a label of their
        own (bounded) times the outcomes."""
        label = self._metrics.tenants.label(tenant)
        child = self._tenant_counters.get((label, outcome))
        if child is None:
            child = self._metrics.tenant_attempts.labels(label, outcome)
            self._tenant_counters[label, outcome] = child
        return child
