"""Carries out one job: replay (events by timestamp) or recover (failed and dead deliveries),
emitting delivery commands and writing progress to the control topic. Progress is written
only after the commands before it are acknowledged, so a job resumed elsewhere from its last
progress loses nothing.

Whatever goes wrong inside a job ends that job `failed`, with the reason on its record; only
a failure to write that record (the producer is dead) escapes `JobRunner.run`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final

import psycopg
from confluent_kafka import KafkaError, Message, TopicPartition

from api.model.reissue import reissue_command
from api.replayer.ports import EventReader, History, Ports
from core.commands import event_body, new_command
from core.delivery_status import RECOVERABLE
from core.records import DeliveryCommand, DomainEvent, Job, Subscription, epoch_ms, utc_ms
from core.replay import of_types, selects
from core.time_bounds import time_problem
from hookline.runtime.errors import ProduceFailed, ProduceTimeout
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from schemas.errors import SchemaError

log = logging.getLogger(__name__)

CHECKPOINT_S: Final = 1.0
FLUSH_TIMEOUT_S: Final = 30.0
SUBSCRIPTION_WAIT_S: Final = 10.0
MAX_REASON_CHARS: Final = 1000


class JobFailed(Exception):
    """The job cannot finish; its record gets status `failed` with this reason."""


class RunnerBroken(Exception):
    """The outcome of a job cannot be recorded (Kafka does not take the record): the runner
    itself is broken, not the job, so the replayer stops."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"cannot record the end of job {job_id}: {reason}")
        self.job_id = job_id
        self.reason = reason


class Cancelled(Exception):
    """The job was handed to another replayer, or this one is stopping; it resumes later."""


class CancelRequested(Exception):
    """The API cancelled the job; `progress` is how far it got (None: as last recorded)."""

    def __init__(self, progress: Job | None = None) -> None:
        super().__init__("cancelled on request")
        self.progress = progress


def _stop_check(cancel: threading.Event, requested: threading.Event | None) -> Callable[[], None]:
    """Raises at a checkpoint once `cancel` is set: CancelRequested when the API asked for
    it (`requested` is set first), else Cancelled (handed over; the job resumes later)."""

    def check() -> None:
        if cancel.is_set():
            raise CancelRequested if requested is not None and requested.is_set() else Cancelled

    return check


class JobRunner:
    """Runs jobs over the replayer's ports; connects to the history database at once
    (psycopg.OperationalError while it is unreachable) and keeps the connection until
    `close`."""

    def __init__(self, settings: Settings, ports: Ports) -> None:
        self._settings = settings
        self._codec = ports.codec
        self._producer = ports.producer
        self._subscriptions = ports.subscriptions
        self._open_events = ports.open_events
        self._open_history = ports.open_history
        self._clock = ports.clock
        self._history: History = ports.open_history()
        self._acks = Acks(self._producer, timeout_s=FLUSH_TIMEOUT_S)

    def _now(self) -> datetime:
        return utc_ms(self._clock.now())

    # -- writing ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Wait for what was produced since the last flush; the next step starts afresh."""
        acks, self._acks = self._acks, Acks(self._producer, timeout_s=FLUSH_TIMEOUT_S)
        try:
            acks.wait()
        except ProduceTimeout as exc:
            raise JobFailed("Kafka did not acknowledge the commands in time") from exc
        except ProduceFailed as exc:
            raise JobFailed(f"Kafka refused a command: {exc.reason}") from exc

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        try:
            self._acks.produce(topic, key=key, value=value)
        except ProduceFailed as exc:
            raise JobFailed(f"Kafka refused a command: {exc.reason}") from exc

    def _emit(self, command: DeliveryCommand) -> None:
        self._produce(
            self._settings.topic("deliveries"),
            command.subscription_id,
            self._codec.encode_delivery_command(command),
        )
        self._producer.poll(0)

    def write(self, job: Job) -> Job:
        """Flush the commands so far, then record `job` on the control topic."""
        self._flush()
        job = dataclasses.replace(job, updated_at=max(self._now(), job.updated_at))
        self._produce(self._settings.topic("control"), job.id, self._codec.encode_job(job))
        self._flush()
        return job

    # -- running ---------------------------------------------------------------------------

    def run(
        self, job: Job, cancel: threading.Event, *, requested: threading.Event | None = None
    ) -> Job:
        """Run `job` to its end and record the outcome: done, failed (any error of the job's
        own) or cancelled (`cancel` set after `requested`). Cancelled (set alone: handed
        over) leaves it running; RunnerBroken when the outcome cannot be recorded."""
        try:
            return self.write(self._outcome(job, _stop_check(cancel, requested)))
        except Cancelled:
            raise
        except Exception as exc:  # the job's outermost loop: record it failed, never stop
            # the job's own refusals must not fail the record of its end
            self._acks = Acks(self._producer, timeout_s=FLUSH_TIMEOUT_S)
            if isinstance(exc, JobFailed):
                log.warning("job %s failed: %s", job.id, exc)
                reason = str(exc)
            else:
                log.exception("job %s failed unexpectedly", job.id)
                reason = f"unexpected {type(exc).__name__}: {exc}"
            try:
                failed = self.write(
                    dataclasses.replace(job, status="failed", error=reason[:MAX_REASON_CHARS])
                )
            except JobFailed as broken:
                raise RunnerBroken(job.id, str(broken)) from exc
            self._reconnect_if_broken()
            return failed

    def _outcome(self, job: Job, check: Callable[[], None]) -> Job:
        """The job's final record, done or cancelled, still to be written."""
        try:
            match job.kind:
                case "replay":
                    ended = self._replay(job, check)
                case "recover":
                    ended = self._recover(job, check)
                case "redeliver":
                    # the Avro contract admits the kind, but the API redelivers at once
                    # (POST /v1/deliveries/{id}/redeliver) and never records such a job
                    raise JobFailed("redeliver is not run as a job")
            return dataclasses.replace(ended, status="done")
        except CancelRequested as exc:
            log.info("job %s cancelled on request", job.id)
            progress = job if exc.progress is None else exc.progress
            return dataclasses.replace(progress, status="cancelled")

    def _reconnect_if_broken(self) -> None:
        """A job's error may have been PostgreSQL going away: connect again for the next job.
        If it is still away, the next job that needs it fails with that reason and retries."""
        if not self._history.broken:
            return
        self._history.close()
        try:
            self._history = self._open_history()
        except psycopg.OperationalError as exc:
            log.warning("PostgreSQL is still unreachable: %s", exc)

    def close(self) -> None:
        self._history.close()

    def _subscription(self, job: Job) -> Subscription:
        if job.subscription_id is None:
            raise JobFailed("the job names no subscription")
        self._subscriptions.wait_for(job.subscription_id, version=1, timeout_s=SUBSCRIPTION_WAIT_S)
        sub = self._subscriptions.get(job.subscription_id)
        if sub is None:
            raise JobFailed(f"subscription {job.subscription_id} does not exist")
        return sub

    def _replay(self, job: Job, check: Callable[[], None]) -> Job:
        if job.since is None:
            raise JobFailed("a replay needs 'since'")
        _check_times(job)
        sub = self._subscription(job)
        since = job.since
        if job.until is None:  # fixed now, so a resumed job scans the same records
            job = self.write(dataclasses.replace(job, until=self._now()))
        assert job.until is not None
        made = self._history.attempts_made(sub.id, since=since)
        resume_after = job.scanned
        scanned = emitted = 0
        checkpoint = self._clock.monotonic()
        try:
            for message in self._events_between(since, job.until, check):
                check()  # per record too: a batch of 500 may take a while to emit
                scanned += 1
                if scanned <= resume_after:
                    continue
                command = self._replay_command(job, sub, message)
                if command is not None:
                    # its attempts are numbered on from those the history holds
                    prior = made.get(command.delivery_id, 0)
                    self._emit(dataclasses.replace(command, prior_attempts=prior))
                    emitted += 1
                if self._clock.monotonic() - checkpoint > CHECKPOINT_S:
                    job = self.write(
                        dataclasses.replace(job, scanned=scanned, emitted=job.emitted + emitted)
                    )
                    resume_after, emitted, checkpoint = scanned, 0, self._clock.monotonic()
        except CancelRequested:
            raise CancelRequested(_progress(job, scanned, emitted)) from None
        return _progress(job, scanned, emitted)

    def _replay_command(
        self, job: Job, sub: Subscription, message: Message
    ) -> DeliveryCommand | None:
        _kind, timestamp_ms = message.timestamp()
        assert job.since is not None
        assert job.until is not None
        if not epoch_ms(job.since) <= timestamp_ms < epoch_ms(job.until):
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
        return _command_for(event, sub, job.id, now=self._now())

    def _events_between(
        self, since: datetime, until: datetime, check: Callable[[], None]
    ) -> Iterator[Message]:
        """Events with offsets from the first at `since` to the first at `until`, partition
        by partition in order, so a resumed job sees them in the same order."""
        topic = self._settings.topic("events")
        consumer = self._open_events()
        try:
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            for partition in sorted(metadata.partitions):
                start, end = self._bounds(consumer, topic, partition, since, until)
                if start < end:
                    consumer.assign([TopicPartition(topic, partition, start)])
                    yield from self._read_partition(consumer, start, end, check)
        finally:
            consumer.close()

    @staticmethod
    def _read_partition(
        consumer: EventReader, start: int, end: int, check: Callable[[], None]
    ) -> Iterator[Message]:
        """Records at offsets [start, end) of the one assigned partition; stops at its end
        (transaction markers have offsets but are never delivered)."""
        position = start
        while position < end:
            check()
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
        self, consumer: EventReader, topic: str, partition: int, since: datetime, until: datetime
    ) -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        # one partition per request: a request naming it twice answers only once
        [first] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, epoch_ms(since))], timeout=30
        )
        [last] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, epoch_ms(until))], timeout=30
        )
        start = first.offset if first.offset >= 0 else high
        end = last.offset if last.offset >= 0 else high
        return max(start, low), end

    def _recover(self, job: Job, check: Callable[[], None]) -> Job:
        if job.since is None:
            raise JobFailed("a recover needs 'since'")
        _check_times(job)
        sub = self._subscription(job)
        since = job.since
        if job.until is None:  # fixed now, so a resumed job selects the same deliveries
            job = self.write(dataclasses.replace(job, until=self._now()))
        assert job.until is not None
        rows = self._history.recoverable(sub.id, since=since, until=job.until, statuses=RECOVERABLE)
        scanned, emitted = job.scanned, job.emitted
        for row in (r for r in rows if of_types(r.event_type, job.event_types)):
            try:
                check()
            except CancelRequested:
                raise CancelRequested(
                    dataclasses.replace(job, scanned=scanned, emitted=emitted)
                ) from None
            except Cancelled:
                self.write(dataclasses.replace(job, scanned=scanned, emitted=emitted))
                raise
            self._emit(reissue_command(row, origin="recover", job_id=job.id))
            scanned += 1
            emitted += 1
        return dataclasses.replace(job, scanned=scanned, emitted=emitted)


def _progress(job: Job, scanned: int, emitted: int) -> Job:
    """`job` after scanning `scanned` records in this run and emitting `emitted` commands
    since its last progress record."""
    return dataclasses.replace(
        job, scanned=max(scanned, job.scanned), emitted=job.emitted + emitted
    )


def _check_times(job: Job) -> None:
    """Refuse times a Kafka lookup cannot take (a record written before the API checked)."""
    for name, moment in (("since", job.since), ("until", job.until)):
        problem = None if moment is None else time_problem(moment)
        if problem is not None:
            raise JobFailed(f"{name} {problem}")


def _command_for(
    event: DomainEvent, sub: Subscription, job_id: str, *, now: datetime
) -> DeliveryCommand:
    """The command the router would have made, marked as a replay of `job_id`."""
    return new_command(
        event, sub.id, payload=event_body(event), now=now, origin="replay", job_id=job_id
    )
