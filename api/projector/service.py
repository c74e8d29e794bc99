"""The projector: deliveries, attempts and dead letters into the PostgreSQL history tables.

Exactly-once projection: each batch's rows and the offsets after them are written in one
database transaction, and on assignment every partition is sought to the offset stored
there; Kafka's committed offsets are never used. A consumer group spreads the partitions
over any number of projectors; with `--rebuild` the tables are dropped first and the topics
replayed from their start, which reproduces the same rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Final

import psycopg
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Histogram

from api.model.errors import ProjectionError
from api.model.undecodable import dead_letter_undecodable
from api.projector.bootstrap import bootstrap
from api.projector.ports import History, OpenHistory, Ports, RecordConsumer
from api.projector.projection import (
    AttemptInsert,
    DeliveryUpsert,
    Offset,
    from_attempt,
    from_command,
    from_dead_letter,
)
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.errors import ProduceFailed
from hookline.runtime.producing import Acks, KafkaProducer
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
POLL_TIMEOUT_S: Final = 0.2
RECONNECT_PATIENCE_S: Final = 120.0
RECONNECT_INTERVAL_S: Final = 0.5
DEAD_LETTER_TIMEOUT_S: Final = 30.0


class Projector:
    """`run(stopping)` projects until stopped; `ready` once caught up with its partitions.
    `run` projects over what `api.projector.bootstrap` builds; `project` over the ports it
    is given (the unit tests)."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, *, rebuild: bool = False
    ) -> None:
        settings.require("kafka_bootstrap", "database_url")
        self._settings = settings
        self._rebuild = rebuild
        self._topics = {
            settings.topic("deliveries"): "deliveries",
            settings.topic("attempts"): "attempts",
            settings.topic("dead-letters"): "dead-letters",
        }
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._assigned_once = False
        self._behind: set[tuple[str, int]] = set()
        self._open_history: OpenHistory | None = None
        self._history: History | None = None
        self._records = Counter(
            "hookline_projector_records",
            "records applied to the history, by topic",
            ["topic"],
            registry=registry,
        )
        self._undecodable = Counter(
            "hookline_projector_undecodable",
            "records that could not be decoded and were dead-lettered",
            registry=registry,
        )
        self._lag = ConsumerLag.of(registry)
        self._batch_s = Histogram(
            "hookline_projector_batch_seconds",
            "time to apply one batch in its transaction",
            registry=registry,
        )

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        with bootstrap(self._settings, lag=self._lag) as ports:
            self.project(ports, stopping)

    def project(self, ports: Ports, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._open_history = ports.open_history
        self._history = self._connect(stopping)
        consumer = ports.consumer
        try:
            if self._rebuild:
                self._history.rebuild()
            consumer.subscribe(
                list(self._topics), on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            while not stopping.is_set():
                messages = consumer.consume(num_messages=BATCH_SIZE, timeout=POLL_TIMEOUT_S)
                if messages:
                    try:
                        self._handle(ports.codec, ports.producer, messages)
                    except psycopg.OperationalError as exc:
                        # PostgreSQL restarted: the batch rolled back with its offsets, so
                        # reconnect and re-read from the offsets the database holds
                        log.warning("projector: database connection lost: %s", exc)
                        self._history.close()
                        self._history = self._connect(stopping)
                        self._rewind(consumer)
                if self._assigned_once and not self._behind:
                    self._ready.set()
        finally:
            if self._history is not None:
                self._history.close()

    def _connect(self, stopping: threading.Event) -> History:
        """Connect, waiting out a database that is (re)starting, for a bounded time."""
        assert self._open_history is not None
        deadline = time.monotonic() + RECONNECT_PATIENCE_S
        while True:
            try:
                return self._open_history()
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline or stopping.is_set():
                    raise ProjectionError("projector", f"database unreachable: {exc}") from exc
                log.warning("projector: waiting for the database: %s", exc)
                time.sleep(RECONNECT_INTERVAL_S)

    def _stored_offsets(self) -> dict[tuple[str, int], int]:
        """The offsets PostgreSQL holds; a database restarting meanwhile is waited for (a
        rebalance can come while it restarts: found by the chaos suite)."""
        assert self._history is not None
        try:
            return self._history.stored_offsets(list(self._topics))
        except psycopg.OperationalError as exc:
            log.warning("projector: database connection lost: %s", exc)
            self._history.close()
            self._history = self._connect(self._stopping)
            return self._history.stored_offsets(list(self._topics))

    def _rewind(self, consumer: RecordConsumer) -> None:
        assert self._history is not None
        stored = self._history.stored_offsets(list(self._topics))
        for tp in consumer.assignment():
            offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    # -- rebalance callbacks run inside consume(), on this thread --------------------------

    def _on_assign(self, consumer: RecordConsumer, partitions: list[TopicPartition]) -> None:
        stored = self._stored_offsets()
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
            self._behind.add((tp.topic, tp.partition))
        consumer.incremental_assign(partitions)
        self._assigned_once = True

    def _on_revoke(self, _consumer: RecordConsumer, partitions: list[TopicPartition]) -> None:
        # nothing to commit: every applied batch already stored its offsets in PostgreSQL
        for tp in partitions:
            self._behind.discard((tp.topic, tp.partition))

    # -- one batch ---------------------------------------------------------------------------

    def _handle(
        self, codec: RecordCodec, producer: KafkaProducer, messages: Sequence[Message]
    ) -> None:
        upserts: list[DeliveryUpsert] = []
        attempts: list[AttemptInsert] = []
        offsets: dict[tuple[str, int], int] = {}
        letters = Acks(producer, timeout_s=DEAD_LETTER_TIMEOUT_S)
        for message in messages:
            error = message.error()
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None
            assert partition is not None
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._behind.discard((topic, partition))
                    continue
                raise ProjectionError("projector", f"{topic}[{partition}]: {error.str()}")
            assert offset is not None
            offsets[(topic, partition)] = offset + 1
            try:
                self._decode(codec, self._topics[topic], message, upserts, attempts)
            except UndecodableRecord as exc:
                self._undecodable.inc()
                if self._topics[topic] != "dead-letters":  # never dead-letter a dead letter
                    dead_letter_undecodable(self._settings, codec, letters, message, exc)
                log.error("projector: %s", exc.at(topic, partition, offset))  # noqa: TRY400
        try:  # before the offsets move past the records they stand for
            letters.wait()
        except ProduceFailed as exc:
            raise ProjectionError("projector", f"dead letter not written: {exc}") from exc
        started = time.perf_counter()
        assert self._history is not None
        self._history.apply_batch(
            upserts,
            attempts,
            [Offset(t, p, o) for (t, p), o in sorted(offsets.items())],
        )
        self._batch_s.observe(time.perf_counter() - started)

    def _decode(
        self,
        codec: RecordCodec,
        kind: str,
        message: Message,
        upserts: list[DeliveryUpsert],
        attempts: list[AttemptInsert],
    ) -> None:
        value = message.value()
        if value is None:
            raise UndecodableRecord("no value")
        if kind == "deliveries":
            upserts.append(from_command(codec.decode_delivery_command(value)))
        elif kind == "attempts":
            upsert, row = from_attempt(codec.decode_delivery_attempt(value))
            upserts.append(upsert)
            attempts.append(row)
        else:
            letter = from_dead_letter(codec.decode_dead_letter(value))
            if letter is not None:
                upserts.append(letter)
        self._records.labels(kind).inc()
