"""The replayer: runs the replay and recover jobs found on `hookline.control`.

Jobs are spread over replayers by the control topic's partitions (a consumer group). The
group never commits offsets: on every assignment a replayer reads its partitions from the
start, so it knows each job's latest record, and only after reaching their end does it pick
up the jobs still `running` (new ones, or ones a stopped replayer left mid-way) and resume
them from their recorded progress. One worker thread runs the jobs, one at a time.

A job's own error ends that job `failed` and the replayer goes on with the next; a job the
API cancelled (a `cancelled` record of it) stops at its next checkpoint and is recorded
`cancelled`. Only the replayer's own machinery failing (its consumer, or a producer that
cannot record a job's end) stops the process.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Final

from confluent_kafka import KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from api.model.errors import ProjectionError
from api.model.jobs import latest_state
from api.model.undecodable import dead_letter_undecodable
from api.replayer.bootstrap import bootstrap
from api.replayer.job_runner import Cancelled, JobRunner
from api.replayer.ports import ControlConsumer, Ports
from core.records import Job
from hookline.runtime.errors import ProduceFailed
from hookline.runtime.producing import Acks, KafkaProducer
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 60.0
DEAD_LETTER_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class _Running:
    """A job on the worker: its control partition, and what stops it."""

    partition: int
    cancel: threading.Event = field(default_factory=threading.Event)
    requested: threading.Event = field(default_factory=threading.Event)

    def hand_over(self) -> None:
        self.cancel.set()

    def cancel_on_request(self) -> None:
        self.requested.set()  # first: the runner reads it once `cancel` is set
        self.cancel.set()


@dataclass(slots=True)
class _Control:
    """What the consumer thread knows of the control topic."""

    latest: dict[str, tuple[Job, int]] = field(default_factory=dict)
    assigned: set[int] = field(default_factory=set)
    caught_up: set[int] = field(default_factory=set)
    running: dict[str, _Running] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    assigned_once: bool = False


class Replayer:
    """`run(stopping)` runs jobs until stopped; `ready` once caught up with its partitions.
    `run` replays over what `api.replayer.bootstrap` builds; `replay` over the ports it is
    given (the unit tests)."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        settings.require("kafka_bootstrap", "database_url")
        self._settings = settings
        self._topic = settings.topic("control")
        self._state = _Control()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._jobs = Counter(
            "hookline_replayer_jobs",
            "jobs ended, by kind and status",
            ["kind", "status"],
            registry=registry,
        )

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        with bootstrap(self._settings) as ports:
            self.replay(ports, stopping)

    def replay(self, ports: Ports, stopping: threading.Event) -> None:
        subscriptions = ports.subscriptions
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookline-replayer-job")
        runner: JobRunner | None = None
        try:
            if not subscriptions.wait_ready(READY_TIMEOUT_S):
                subscriptions.check()
                raise ProjectionError("replayer", "the subscriptions table is not caught up")
            runner = JobRunner(self._settings, ports)
            consumer = ports.control
            consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not stopping.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.2):
                    self._take(ports.codec, ports.producer, message)
                if self._failure is not None:
                    raise ProjectionError("replayer", f"cannot run jobs: {self._failure}")
                subscriptions.check()  # the jobs read it: a stopped table stops the replayer
                self._start_jobs(worker, runner)
                state = self._state
                if state.assigned_once and state.assigned <= state.caught_up:
                    self._ready.set()
        finally:
            with self._lock:
                for running in self._state.running.values():
                    running.hand_over()
            worker.shutdown(wait=True)
            if runner is not None:
                runner.close()  # its database connection

    def _on_assign(self, consumer: ControlConsumer, partitions: list[TopicPartition]) -> None:
        # offsets are never committed, so each assigned partition is read from its start
        self._state.assigned |= {tp.partition for tp in partitions}
        self._state.assigned_once = True

    def _on_revoke(self, _consumer: ControlConsumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        state = self._state
        state.assigned -= gone
        state.caught_up -= gone
        state.latest = {k: v for k, v in state.latest.items() if v[1] not in gone}
        with self._lock:
            for running in state.running.values():
                if running.partition in gone:
                    running.hand_over()

    def _take(self, codec: RecordCodec, producer: KafkaProducer, message: Message) -> None:
        partition = message.partition()
        assert partition is not None
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._state.caught_up.add(partition)
                return
            raise ProjectionError("replayer", f"{self._topic}[{partition}]: {error.str()}")
        value = message.value()
        if value is None:
            return
        try:
            job = codec.decode_job(value)
        except UndecodableRecord as exc:
            letter = Acks(producer, timeout_s=DEAD_LETTER_TIMEOUT_S)
            dead_letter_undecodable(self._settings, codec, letter, message, exc)
            try:
                letter.wait()
            except ProduceFailed as failed:
                raise ProjectionError("replayer", f"dead letter not written: {failed}") from exc
            return
        previous = self._state.latest.get(job.id)
        job = latest_state(None if previous is None else previous[0], job)
        self._state.latest[job.id] = (job, partition)
        if job.status == "cancelled":
            with self._lock:
                running = self._state.running.get(job.id)
            if running is not None:
                running.cancel_on_request()

    def _start_jobs(self, worker: ThreadPoolExecutor, runner: JobRunner) -> None:
        state = self._state
        for job_id, (job, partition) in list(state.latest.items()):
            if (
                job.status != "running"
                or partition not in state.caught_up
                or job_id in state.finished
            ):
                continue
            with self._lock:
                if job_id in state.running:
                    continue
                running = state.running[job_id] = _Running(partition)
            future = worker.submit(runner.run, job, running.cancel, requested=running.requested)
            future.add_done_callback(partial(self._ended, job))

    def _ended(self, job: Job, future: Future[Job]) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self._state.finished.add(job.id)  # before leaving `running`: never restarted
            elif not isinstance(error, Cancelled):
                # run() records every error of the job's own; what escapes is the machinery's
                self._failure = error
            self._state.running.pop(job.id, None)
        if isinstance(error, Cancelled):
            log.info("job %s handed over; it resumes from its progress", job.id)
        elif error is None:
            final = future.result()
            self._jobs.labels(final.kind, final.status).inc()
