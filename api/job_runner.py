"""Carries out one job: replay (events by timestamp), recover (failed and dead deliveries)
or redeliver (one delivery), emitting delivery commands and writing progress to the control
topic. Progress is written only after the commands before it are acknowledged, so a job
resumed elsewhere from its last progress loses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from api.history import recoverable, stored_command_sync
from api.reissue import reissue_command
from core.commands import event_body, new_command
from core.delivery_status import RECOVERABLE
from core.records import DeliveryCommand, DomainEvent, Job, Subscription, utc_ms
from core.replay import selects
from hookline.kafka import reader_config
from hookline.settings import Settings
from hookline.subscription_table import SubscriptionTable
from schemas.errors import SchemaError
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

CHECKPOINT_S: Final = 1.0
FLUSH_TIMEOUT_S: Final = 30.0
SUBSCRIPTION_WAIT_S: Final = 10.0


class JobFailed(Exception):
    """The job cannot finish; its record gets status `failed` with this reason."""


class Cancelled(Exception):
    """The job was handed to another replayer, or this one is stopping; it resumes later."""


def _now() -> datetime:
    return utc_ms(datetime.now(UTC))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        codec: RecordCodec,
        producer: Producer,
        subscriptions: SubscriptionTable,
        conn: psycopg.Connection[object],
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._producer = producer
        self._subscriptions = subscriptions
        self._conn = conn
        self._errors: list[KafkaError] = []

    # -- writing ---------------------------------------------------------------------------

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._errors.append(error)

    def _flush(self) -> None:
        if self._producer.flush(FLUSH_TIMEOUT_S) > 0:
            raise JobFailed("Kafka did not acknowledge the commands in time")
        if self._errors:
            raise JobFailed(f"Kafka refused a command: {self._errors[0].str()}")

    def _emit(self, command: DeliveryCommand) -> None:
        self._producer.produce(
            self._settings.topic("deliveries"),
            key=command.subscription_id,
            value=self._codec.encode_delivery_command(command),
            on_delivery=self._delivered,
        )
        self._producer.poll(0)

    def write(self, job: Job) -> Job:
        """Flush the commands so far, then record `job` on the control topic."""
        self._flush()
        job = dataclasses.replace(job, updated_at=max(_now(), job.updated_at))
        self._producer.produce(
            self._settings.topic("control"),
            key=job.id,
            value=self._codec.encode_job(job),
            on_delivery=self._delivered,
        )
        self._flush()
        return job

    # -- running ---------------------------------------------------------------------------

    def run(self, job: Job, cancel: threading.Event) -> Job:
        """Run `job` to its end and record the outcome; Cancelled leaves it running."""
        try:
            match job.kind:
                case "replay":
                    job = self._replay(job, cancel)
                case "recover":
                    job = self._recover(job, cancel)
                case "redeliver":
                    job = self._redeliver(job)
            return self.write(dataclasses.replace(job, status="done"))
        except JobFailed as exc:
            self._errors.clear()
            log.warning("job %s failed: %s", job.id, exc)
            return self.write(dataclasses.replace(job, status="failed", error=str(exc)))

    def _subscription(self, job: Job) -> Subscription:
        if job.subscription_id is None:
            raise JobFailed("the job names no subscription")
        self._subscriptions.wait_for(job.subscription_id, version=1, timeout_s=SUBSCRIPTION_WAIT_S)
        sub = self._subscriptions.get(job.subscription_id)
        if sub is None:
            raise JobFailed(f"subscription {job.subscription_id} does not exist")
        return sub

    def _replay(self, job: Job, cancel: threading.Event) -> Job:
        sub = self._subscription(job)
        if job.since is None:
            raise JobFailed("a replay needs 'since'")
        since = job.since
        if job.until is None:  # fixed now, so a resumed job scans the same records
            job = self.write(dataclasses.replace(job, until=_now()))
        assert job.until is not None
        resume_after = job.scanned
        scanned = emitted = 0
        checkpoint = time.monotonic()
        for message in self._events_between(since, job.until, cancel):
            scanned += 1
            if scanned <= resume_after:
                continue
            command = self._replay_command(job, sub, message)
            if command is not None:
                self._emit(command)
                emitted += 1
            if time.monotonic() - checkpoint > CHECKPOINT_S:
                job = self.write(
                    dataclasses.replace(job, scanned=scanned, emitted=job.emitted + emitted)
                )
                resume_after, emitted, checkpoint = scanned, 0, time.monotonic()
        return dataclasses.replace(
            job, scanned=max(scanned, job.scanned), emitted=job.emitted + emitted
        )

    def _replay_command(
        self, job: Job, sub: Subscription, message: Message
    ) -> DeliveryCommand | None:
        _kind, timestamp_ms = message.timestamp()
        assert job.since is not None
        assert job.until is not None
        if not _ms(job.since) <= timestamp_ms < _ms(job.until):
            return None
        value = message.value()
        if value is None:
            return None
        try:
            event = self._codec.decode_event(value)
        except SchemaError as exc:  # the router dead-lettered it already; replay skips it
            log.warning("replay %s: skipping an undecodable event: %s", job.id, exc)
            return None
        if not selects(event, sub, job.event_types):
            return None
        return _command_for(event, sub, job.id)

    def _events_between(
        self, since: datetime, until: datetime, cancel: threading.Event
    ) -> Iterator[Message]:
        """Events with offsets from the first at `since` to the first at `until`, partition
        by partition in order, so a resumed job sees them in the same order."""
        topic = self._settings.topic("events")
        consumer = Consumer(
            reader_config(self._settings, client_id="hookline-replayer-events")
            | {"enable.partition.eof": True}
        )
        try:
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            for partition in sorted(metadata.partitions):
                start, end = self._bounds(consumer, topic, partition, since, until)
                if start < end:
                    consumer.assign([TopicPartition(topic, partition, start)])
                    yield from self._read_partition(consumer, start, end, cancel)
        finally:
            consumer.close()

    @staticmethod
    def _read_partition(
        consumer: Consumer, start: int, end: int, cancel: threading.Event
    ) -> Iterator[Message]:
        """Records at offsets [start, end) of the one assigned partition; stops at its end
        (transaction markers have offsets but are never delivered)."""
        position = start
        while position < end:
            if cancel.is_set():
                raise Cancelled
            for message in consumer.consume(num_messages=500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise JobFailed(f"reading events: {error.str()}")
                    position = end
                    break
                offset = message.offset()
                assert offset is not None
                if offset >= end:
                    position = end
                    break
                position = offset + 1
                yield message

    def _bounds(
        self, consumer: Consumer, topic: str, partition: int, since: datetime, until: datetime
    ) -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        # one partition per request: a request naming it twice answers only once
        [first] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, _ms(since))], timeout=30
        )
        [last] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, _ms(until))], timeout=30
        )
        start = first.offset if first.offset >= 0 else high
        end = last.offset if last.offset >= 0 else high
        return max(start, low), end

    def _recover(self, job: Job, cancel: threading.Event) -> Job:
        sub = self._subscription(job)
        if job.since is None:
            raise JobFailed("a recover needs 'since'")
        rows = recoverable(self._conn, sub.id, since=job.since, statuses=RECOVERABLE)
        scanned, emitted = job.scanned, job.emitted
        for row in rows:
            if cancel.is_set():
                self.write(dataclasses.replace(job, scanned=scanned, emitted=emitted))
                raise Cancelled
            self._emit(reissue_command(row, origin="recover", job_id=job.id))
            scanned += 1
            emitted += 1
        return dataclasses.replace(job, scanned=scanned, emitted=emitted)

    def _redeliver(self, job: Job) -> Job:
        if job.delivery_id is None:
            raise JobFailed("a redeliver job names no delivery")
        stored = stored_command_sync(self._conn, job.delivery_id)
        if stored is None:
            raise JobFailed(f"delivery {job.delivery_id} is not in the history")
        self._emit(reissue_command(stored, origin="redeliver", job_id=job.id))
        return dataclasses.replace(job, scanned=1, emitted=1)


def _command_for(event: DomainEvent, sub: Subscription, job_id: str) -> DeliveryCommand:
    """The command the router would have made, marked as a replay of `job_id`."""
    return new_command(
        event, sub.id, payload=event_body(event), now=_now(), origin="replay", job_id=job_id
    )
