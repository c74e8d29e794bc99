"""Jobs by id, read from the compacted `hookline.control` topic (the API's view of them).

Like the subscriptions table: read to the end offsets taken at start before ready, then
follow live. Progress survives restarts because it lives on the topic, not in memory.
Two writers share a job's key: the replayer (progress, its end) and the API (a cancel), so
every reader applies `latest_state`, under which an ended job stays ended.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from core.records import Job, JobKind, JobStatus, utc_ms
from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Settings
from schemas.errors import SchemaError
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)


def new_job(
    kind: JobKind,
    *,
    tenant: str,
    subscription_id: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_types: tuple[str, ...] = (),
) -> Job:
    """A job just asked for: running, nothing scanned yet."""
    now = utc_ms(datetime.now(UTC))
    return Job(
        id=str(uuid.uuid4()),
        kind=kind,
        tenant=tenant,
        subscription_id=subscription_id,
        since=None if since is None else utc_ms(since),
        until=None if until is None else utc_ms(until),
        event_types=event_types,
        created_at=now,
        updated_at=now,
    )


ENDED: Final[frozenset[JobStatus]] = frozenset({"done", "failed", "cancelled"})


def latest_state(previous: Job | None, record: Job) -> Job:
    """The job once `record` of it is read. An ended job stays ended: a `running` record
    after its end is progress the replayer wrote before it saw the API's cancel."""
    if previous is not None and previous.status in ENDED and record.status == "running":
        return previous
    return record


@dataclass(frozen=True, slots=True)
class JobQuery:
    """What `GET /v1/jobs` asks for; `tenant` None is the admin, who sees every tenant."""

    tenant: str | None
    status: str | None = None
    kind: str | None = None


JobKey = tuple[str, str]
"""A job's place in the list: its creation time (ISO text) and id, newest first."""


def job_key(job: Job) -> JobKey:
    return (job.created_at.isoformat(), job.id)


def page_of_jobs(
    jobs: Iterable[Job], query: JobQuery, *, limit: int, after: JobKey | None
) -> tuple[list[Job], JobKey | None]:
    """The page after `after`, newest first, and the key to continue from (None: the last)."""
    rows = sorted(
        (
            job
            for job in jobs
            if (query.tenant is None or job.tenant == query.tenant)
            and (query.status is None or job.status == query.status)
            and (query.kind is None or job.kind == query.kind)
            and (after is None or job_key(job) < after)
        ),
        key=job_key,
        reverse=True,
    )
    page = rows[:limit]
    return page, (job_key(page[-1]) if len(rows) > limit else None)


class JobTable:
    def __init__(self, settings: Settings, codec: RecordCodec, *, client_id: str) -> None:
        self._topic = settings.topic("control")
        self._config = reader_config(settings, client_id=client_id)
        self._codec = codec
        self._rows: Mapping[str, Job] = MappingProxyType({})
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"{client_id}-jobs", daemon=True)
        self._failure: BaseException | None = None

    def get(self, job_id: str) -> Job | None:
        return self._rows.get(job_id)

    def snapshot(self) -> Mapping[str, Job]:
        """Every job as of now (an immutable view; later changes make a new one)."""
        return self._rows

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._failure is None

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def wait_for(self, job_id: str, *, updated_at: datetime, timeout_s: float) -> bool:
        """Wait until the table holds the job as of `updated_at` or later."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                row = self._rows.get(job_id)
                if row is not None and row.updated_at >= updated_at:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._failure is not None:
                    return False
                self._changed.wait(remaining)

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            self._follow(consumer)
        except BaseException as exc:
            self._failure = exc
            log.exception("the jobs table stopped")
            with self._changed:
                self._changed.notify_all()
        finally:
            consumer.close()

    def _follow(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(self._topic, timeout=30)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise RuntimeError(f"topic {self._topic} is missing; run 'hookline topics ensure'")
        ends = {}
        for p in sorted(topic.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=30)
            ends[p] = high
        consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in ends])
        pending = {p for p, end in ends.items() if end > 0}
        if not pending:
            self._ready.set()
        while not self._stopping.is_set():
            # poll() returns at the first record (consume() would wait out its timeout)
            first = consumer.poll(0.2)
            messages = [] if first is None else [first, *consumer.consume(499, timeout=0)]
            if messages:
                self._apply(messages)
            for p in list(pending):
                position = consumer.position([TopicPartition(self._topic, p)])[0].offset
                if position >= ends[p]:
                    pending.discard(p)
                    if not pending:
                        self._ready.set()

    def _apply(self, messages: list[Message]) -> None:
        rows = dict(self._rows)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("control topic: %s", error.str())
                continue
            key, value = message.key(), message.value()
            if key is None:
                continue
            if value is None:
                rows.pop(key.decode(), None)
                continue
            try:
                job = self._codec.decode_job(value)
            except SchemaError as exc:
                log.error("undecodable job at offset %s: %s", message.offset(), exc)  # noqa: TRY400
                continue
            rows[job.id] = latest_state(rows.get(job.id), job)
        with self._changed:
            self._rows = MappingProxyType(rows)
            self._changed.notify_all()
