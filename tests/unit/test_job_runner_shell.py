"""The replayer's shell (`Replayer.replay`, `JobRunner.run`) driven through in-memory fakes
of its ports: a job resumed from its progress record skips what was done, a job the API
cancelled stops at the next record, and a job's own error ends that job `failed` while the
replayer goes on with the next. What the SQL selects for a recover is tested on PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from api.model.history import StoredCommand
from api.replayer.job_runner import JobRunner
from api.replayer.ports import Ports
from api.replayer.service import Replayer
from core.ids import delivery_id
from core.records import Job, JobKind
from tests.factories import subscription
from tests.fakes import (
    FakeEof,
    FakeMessage,
    FakeProducer,
    FakeRecoverDatabase,
    FakeSubscriptionTable,
    FakeTransactionalKafka,
    ManualClock,
    undialled_settings,
)
from tests.unit.test_records_avro import SAMPLE_DATA, event, make_codec
from tests.waiting import eventually

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


class Shell:
    """One replayer's ports over fakes: `control` and `events` of two partitions each."""

    def __init__(self) -> None:
        self.settings = undialled_settings()
        self.control = self.settings.topic("control")
        self.events = self.settings.topic("events")
        self.codec = make_codec()
        self.kafka = FakeTransactionalKafka({self.control: 2, self.events: 2}, partition_eof=True)
        self.producer = FakeProducer()
        self.database = FakeRecoverDatabase()
        self.subscriptions = FakeSubscriptionTable({"sub-1": subscription("sub-1", "task.*")})
        self.ports = Ports(
            codec=self.codec,
            control=self.kafka.consumer(),
            open_events=self.kafka.reader,
            producer=self.producer,
            subscriptions=self.subscriptions,
            open_history=self.database.open,
            clock=ManualClock(T0 + timedelta(hours=1)),
        )

    def job(self, kind: JobKind, *, until: datetime | None = None) -> Job:
        return Job(
            id=str(uuid.uuid4()),
            kind=kind,
            tenant="acme",
            subscription_id="sub-1",
            since=T0,
            until=until,
            created_at=T0,
            updated_at=T0,
        )

    def record(self, job: Job, partition: int = 0) -> None:
        """Write `job` to `control`, as the API (or an earlier replayer) did."""
        self.kafka.add(
            self.control, partition, key=job.id.encode(), value=self.codec.encode_job(job)
        )

    def publish(self, partition: int, minute: int) -> str:
        """A task.created event `minute` minutes after T0 on `partition` of `events`; its id."""
        event_id = str(uuid.uuid4())
        value = self.codec.encode_event(
            event("task.created", SAMPLE_DATA["task.created"], id=event_id)
        )
        at_ms = int((T0 + timedelta(minutes=minute)).timestamp() * 1000)
        self.kafka.add(self.events, partition, key=b"t1", value=value, timestamp_ms=at_ms)
        return event_id

    def commands(self) -> list[str]:
        """The event ids of the delivery commands emitted, in order."""
        return [
            self.codec.decode_delivery_command(r.value).event_id
            for r in self.producer.to(self.settings.topic("deliveries"))
            if r.value is not None
        ]

    def ended(self, job_id: str) -> Job | None:
        """The last record the replayer wrote of `job_id`, once it is an end."""
        records = [
            self.codec.decode_job(r.value)
            for r in self.producer.to(self.control)
            if r.value is not None and r.key == job_id
        ]
        last = records[-1] if records else None
        return last if last is not None and last.status != "running" else None

    def stored(self, n: int) -> StoredCommand:
        return StoredCommand(
            delivery_id=f"d-{n}",
            event_id=str(uuid.uuid4()),
            event_type="task.created",
            subscription_id="sub-1",
            tenant="acme",
            occurred_at=T0,
            payload=b"{}",
            attempts=1,
        )


class Running:
    """`Replayer.replay` on a thread; `stop` stops it and raises what stopped it early."""

    def __init__(self, shell: Shell) -> None:
        self.stopping = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replayer-test")
        replayer = Replayer(shell.settings, CollectorRegistry())
        self._done = self._thread.submit(replayer.replay, shell.ports, self.stopping)

    def stop(self) -> None:
        self.stopping.set()
        try:
            self._done.result(timeout=10)
        finally:
            self._thread.shutdown(wait=False)


def test_a_restarted_replayer_resumes_a_replay_from_its_progress_record() -> None:
    shell = Shell()
    ids = [shell.publish(0, minute) for minute in (1, 2, 3, 4, 5)]
    job = shell.job("replay")
    shell.record(job)
    # the earlier replayer fixed `until` and recorded two events done before it stopped
    shell.record(dataclasses.replace(job, until=T0 + timedelta(minutes=30), scanned=2, emitted=2))
    running = Running(shell)
    try:
        done = eventually(lambda: shell.ended(job.id), "the job's end")
    finally:
        running.stop()
    assert shell.commands() == ids[2:]
    assert (done.status, done.scanned, done.emitted) == ("done", 5, 5)


def test_a_job_cancelled_on_request_stops_at_the_next_record() -> None:
    shell = Shell()
    first = [shell.publish(0, minute) for minute in (1, 2, 3)]
    for minute in (4, 5, 6):
        shell.publish(1, minute)
    cancel, requested = threading.Event(), threading.Event()

    def cancel_on_partition_1(messages: list[FakeMessage | FakeEof]) -> None:
        # the API's cancel arrives while the replay reads its second partition
        if any(m.partition() == 1 for m in messages):
            requested.set()
            cancel.set()

    shell.kafka.on_consume = cancel_on_partition_1
    runner = JobRunner(shell.settings, shell.ports)
    job = shell.job("replay", until=T0 + timedelta(minutes=30))
    ended = runner.run(job, cancel, requested=requested)
    assert shell.commands() == first
    assert (ended.status, ended.scanned, ended.emitted) == ("cancelled", 3, 3)
    assert shell.ended(job.id) == ended


def test_a_failed_job_ends_failed_with_its_reason_and_the_next_job_runs() -> None:
    shell = Shell()
    shell.database.fail_next_select = True
    shell.database.rows["sub-1"] = [shell.stored(1), shell.stored(2)]
    broken, fine = shell.job("recover"), shell.job("recover")
    shell.record(broken)
    shell.record(fine)
    running = Running(shell)
    try:
        failed = eventually(lambda: shell.ended(broken.id), "the broken job's end")
        done = eventually(lambda: shell.ended(fine.id), "the next job's end")
    finally:
        running.stop()
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("unexpected OperationalError: server closed the connection")
    assert (done.status, done.scanned, done.emitted) == ("done", 2, 2)
    assert len(shell.commands()) == 2
    # the lost connection was replaced for the next job, and closed with the replayer
    assert len(shell.database.connections) == 2
    assert all(connection.closed for connection in shell.database.connections)


def test_re_sent_commands_number_their_attempts_on_from_the_history() -> None:
    """Regression: a replay or recover of a delivery already attempted started at 1 again."""
    shell = Shell()
    replayed, fresh = shell.publish(0, 1), shell.publish(0, 2)
    shell.database.attempts["sub-1"][delivery_id(replayed, "sub-1")] = 3
    shell.database.rows["sub-1"] = [shell.stored(1)]  # one attempt made
    runner = JobRunner(shell.settings, shell.ports)
    never = threading.Event()
    runner.run(shell.job("replay", until=T0 + timedelta(minutes=30)), never, requested=never)
    runner.run(shell.job("recover"), never, requested=never)
    sent = [
        shell.codec.decode_delivery_command(r.value)
        for r in shell.producer.to(shell.settings.topic("deliveries"))
        if r.value is not None
    ]
    assert [(c.event_id, c.origin, c.prior_attempts) for c in sent[:2]] == [
        (replayed, "replay", 3),
        (fresh, "replay", 0),
    ]
    assert (sent[2].delivery_id, sent[2].origin, sent[2].prior_attempts) == ("d-1", "recover", 1)
