"""In-memory fakes of the services' ports (`deliverer.ports`, `router.ports`,
`api.projector.ports`, `api.replayer.ports`), for unit tests of their shells.

Each keeps the promise of the real thing that the shell relies on, and no more: the
deliverer's consumer serves rebalance callbacks and commit reports inside `consume`, a
producer acknowledges inside `poll`, a transactional producer makes its records and offsets
visible only on commit and a newer producer under the same transactional id fences the
older, the sender answers what the test programmed, the clock moves only when told.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from api.model.history import StoredCommand
from api.projector.projection import AttemptInsert, DeliveryUpsert, Offset
from core.attempts import Observed
from core.outcome import AttemptOutcome, Response
from core.records import Subscription
from deliverer.backlog import Restored
from deliverer.ports import OnAssign, OnCommit
from deliverer.sender import Attempted
from hookline.runtime.producing import OnDelivery
from hookline.runtime.settings import Settings

TP = tuple[str, int]


def undialled_settings() -> Settings:
    """The addresses a shell requires at start (Kafka, PostgreSQL), never dialled: its ports
    are the fakes below."""
    return Settings.load(
        environ={},
        overrides={"kafka_bootstrap": "fake:9092", "database_url": "postgresql://fake/db"},
    )


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """A record as confluent_kafka.Message shows it (methods, not attributes)."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _timestamp_ms: int = 0
    _headers: list[tuple[str, bytes]] | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)  # TIMESTAMP_CREATE_TIME

    def error(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class FakeEof:
    """The end of a partition as a consumer with `enable.partition.eof` reports it."""

    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> None:
        return None

    def error(self) -> KafkaError:
        return KafkaError(KafkaError._PARTITION_EOF)


@dataclass(frozen=True, slots=True)
class _Topic:
    partitions: dict[int, object]


@dataclass(frozen=True, slots=True)
class _Metadata:
    topics: dict[str, _Topic]


class FakeConsumer:
    """A group consumer whose assignment the test decides (`assign`, `revoke`). Commits are
    recorded in `committed`; an asynchronous one is reported to `on_commit` at the next
    `consume`, as librdkafka does. `refuse_commits` makes every commit fail with that error."""

    def __init__(self, *, on_commit: OnCommit, partitions: Mapping[str, int]) -> None:
        self._on_commit = on_commit
        self._partition_counts = dict(partitions)
        self._log: dict[TP, list[FakeMessage]] = defaultdict(list)
        self._positions: dict[TP, int] = {}
        self._reports: list[tuple[KafkaError | None, list[TopicPartition]]] = []
        self._callbacks: tuple[OnAssign, OnAssign, OnAssign] | None = None
        self.paused: set[TP] = set()
        self.committed: dict[TP, int] = {}
        self.commit_calls: list[list[tuple[str, int, int]]] = []
        self.refuse_commits: KafkaError | None = None
        self.closed = False

    # -- what the test does --------------------------------------------------------------------

    def add(
        self,
        topic: str,
        partition: int,
        *,
        key: bytes | None,
        value: bytes | None,
        offset: int | None = None,
        timestamp_ms: int = 0,
    ) -> int:
        """Append a record (at `offset`, leaving a gap, when given); returns its offset."""
        log = self._log[(topic, partition)]
        next_offset = log[-1].offset() + 1 if log else 0
        at = next_offset if offset is None else offset
        assert at >= next_offset, "offsets ascend"
        log.append(FakeMessage(topic, partition, at, key, value, timestamp_ms))
        return at

    def assign(self, topic: str, *partitions: int) -> None:
        assert self._callbacks is not None, "subscribe first"
        self._callbacks[0](self, [TopicPartition(topic, p) for p in partitions])

    def revoke(self, topic: str, *partitions: int) -> None:
        assert self._callbacks is not None, "subscribe first"
        self._callbacks[1](self, [TopicPartition(topic, p) for p in partitions])
        for partition in partitions:
            self._positions.pop((topic, partition), None)
            self.paused.discard((topic, partition))

    # -- confluent_kafka.Consumer ----------------------------------------------------------------

    def subscribe(
        self, topics: list[str], *, on_assign: OnAssign, on_revoke: OnAssign, on_lost: OnAssign
    ) -> None:
        self._callbacks = (on_assign, on_revoke, on_lost)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._positions[key] = self.committed.get(key, 0)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        reports, self._reports = self._reports, []
        for error, partitions in reports:
            self._on_commit(error, partitions)
        taken: list[Any] = []
        for tp, position in self._positions.items():
            if tp in self.paused:
                continue
            ready = [m for m in self._log[tp] if m.offset() >= position]
            for message in ready[: num_messages - len(taken)]:
                taken.append(message)
                self._positions[tp] = message.offset() + 1
        return taken

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: bool
    ) -> list[TopicPartition] | None:
        self.commit_calls.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])
        error = self.refuse_commits
        if error is None:
            for tp in offsets:
                self.committed[(tp.topic, tp.partition)] = tp.offset
        if not asynchronous:
            if error is not None:
                raise KafkaException(error)
            return offsets
        self._reports.append((error, offsets))
        return None

    def list_topics(self, topic: str, timeout: float) -> Any:
        count = self._partition_counts.get(topic, 0)
        return _Metadata({topic: _Topic(dict.fromkeys(range(count)))})

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True, slots=True)
class Produced:
    topic: str
    key: str | bytes | None
    value: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]] | None


class FakeProducer:
    """Acknowledges what it was given at the next `poll` or `flush`; refuses everything with
    `refuse` set; keeps everything unacknowledged while `hold` is True."""

    def __init__(self) -> None:
        self.produced: list[Produced] = []
        self._pending: deque[tuple[Produced, OnDelivery]] = deque()
        self.refuse: KafkaError | None = None
        self.hold = False

    def produce(
        self,
        topic: str,
        *,
        key: str | bytes | None,
        value: bytes | None,
        on_delivery: OnDelivery,
        **extra: Any,
    ) -> None:
        record = Produced(topic, key, value, extra.get("partition"), extra.get("headers"))
        self.produced.append(record)
        self._pending.append((record, on_delivery))

    def poll(self, timeout: float) -> int:
        if self.hold:
            return 0
        served = 0
        while self._pending:
            record, on_delivery = self._pending.popleft()
            on_delivery(self.refuse, record)
            served += 1
        return served

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return len(self._pending)

    def to(self, topic: str) -> list[Produced]:
        return [record for record in self.produced if record.topic == topic]


@dataclass(frozen=True, slots=True)
class Sent:
    url: str
    headers: Mapping[str, str]
    body: bytes


class FakeSender:
    """Answers each URL's posts with the outcomes queued by `answer` (then 200s). A URL
    that is `hold`-ed keeps its posts waiting until `release`."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._answers: dict[str, deque[AttemptOutcome]] = defaultdict(deque)
        self._gates: dict[str, asyncio.Event] = {}
        self.sent: list[Sent] = []
        self.started = False
        self.closed = False

    def answer(self, url: str, *outcomes: AttemptOutcome) -> None:
        self._answers[url].extend(outcomes)

    def hold(self, url: str) -> None:
        self._gates[url] = asyncio.Event()

    def release(self, url: str) -> None:
        self._gates.pop(url).set()

    def to(self, url: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.url == url]

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, deadline_s: float
    ) -> Attempted:
        self.sent.append(Sent(url, dict(headers), body))
        gate = self._gates.get(url)
        if gate is not None:
            await gate.wait()
        answers = self._answers[url]
        outcome = answers.popleft() if answers else Response(200, None)
        status = outcome.status if isinstance(outcome, Response) else None
        return Attempted(outcome, Observed(self._clock.now(), 1, status, b""))


class ManualClock:
    """Time that moves only with `advance`."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._monotonic = 1000.0

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)


@dataclass
class FakeSubscriptions:
    """The subscriptions table, caught up from the start; `put` is the subscription log."""

    known: dict[str, Subscription] = field(default_factory=dict)
    written: list[Subscription] = field(default_factory=list)
    ready: bool = True
    failure: BaseException | None = None

    def get(self, subscription_id: str) -> Subscription | None:
        return self.known.get(subscription_id)

    def put(self, subscription: Subscription) -> None:
        self.written.append(subscription)
        self.known[subscription.id] = subscription


def restore_nothing(
    path: Path, topic: str, partition: int, *, cancelled: threading.Event
) -> Restored | None:
    """A changelog partition with no records: nothing to bring back."""
    return Restored(partition, Counter(), 0, 0.0)


class FakeSubscriptionTable(FakeSubscriptions):
    """The table as the router waits on it: ready and caught up at once."""

    def wait_ready(self, timeout_s: float) -> bool:
        return self.ready

    def wait_caught_up(self, ends: Mapping[int, int], *, timeout_s: float) -> bool:
        return True

    def snapshot(self) -> Mapping[str, Subscription]:
        return dict(self.known)  # a new mapping, as the table gives after any change

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def wait_for(self, subscription_id: str, *, version: int | None, timeout_s: float) -> bool:
        row = self.known.get(subscription_id)
        return row is None if version is None else row is not None and row.version >= version


@dataclass(frozen=True, slots=True)
class _TopicInfo:
    partitions: dict[int, object]
    error: KafkaError | None = None


@dataclass(frozen=True, slots=True)
class _ClusterInfo:
    topics: dict[str, _TopicInfo]


@dataclass(frozen=True, slots=True)
class Committed:
    """A record of a committed transaction."""

    topic: str
    key: str | bytes | None
    value: bytes | None


class FakeTransactionalKafka:
    """A broker as a transactional router sees it: topic logs, the group's committed offsets
    and the records of committed transactions (`committed`, `records`). `consumer()` and
    `producer()` build clients over it (`router.ports.Clients`).

    `fail_next_produce` / `fail_next_commit` make the next such call raise that error once;
    `fence()` is a newer instance initialising the same transactional id; `on_poll` runs at
    every `poll` with what it returns (None: nothing left to read), `on_consume` at every
    `consume`. With `partition_eof` its consumers report each partition's end (as
    `enable.partition.eof` does); `reader()` reads outside any group."""

    def __init__(self, partitions: Mapping[str, int], *, partition_eof: bool = False) -> None:
        self.partitions = dict(partitions)
        self.partition_eof = partition_eof
        self.logs: dict[TP, list[FakeMessage]] = defaultdict(list)
        self.committed: dict[TP, int] = {}
        self.records: list[Committed] = []
        self.aborted = 0
        self.consumers: list[FakeEventConsumer] = []
        self.producers: list[FakeTransactionalProducer] = []
        self.fail_next_produce: KafkaError | None = None
        self.fail_next_commit: KafkaError | None = None
        self.on_poll: Callable[[FakeMessage | None], None] = lambda _message: None
        self.on_consume: Callable[[list[Any]], None] = lambda _messages: None

    def add(
        self,
        topic: str,
        partition: int,
        *,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int = 0,
    ) -> int:
        """Append a record; returns its offset."""
        log = self.logs[(topic, partition)]
        log.append(FakeMessage(topic, partition, len(log), key, value, timestamp_ms))
        return len(log) - 1

    def to(self, topic: str) -> list[Committed]:
        return [record for record in self.records if record.topic == topic]

    def fence(self) -> None:
        """What a newer instance's `init_transactions` does to the older producers."""
        for producer in self.producers:
            producer.fenced = True

    def consumer(self) -> FakeEventConsumer:
        consumer = FakeEventConsumer(self)
        self.consumers.append(consumer)
        return consumer

    def producer(self) -> FakeTransactionalProducer:
        return FakeTransactionalProducer(self)

    def reader(self) -> FakeReader:
        return FakeReader(self)

    def take(
        self, positions: dict[TP, int], reported: set[TP], num_messages: int, *, eof: bool
    ) -> list[Any]:
        """Up to `num_messages` records from `positions` on, moving them; with `eof`, the
        end of each partition once reached (again after new records)."""
        taken: list[Any] = []
        for tp, position in positions.items():
            ready = [m for m in self.logs[tp] if m.offset() >= position]
            for message in ready[: num_messages - len(taken)]:
                taken.append(message)
                positions[tp] = message.offset() + 1
                reported.discard(tp)
            end = len(self.logs[tp])
            if eof and positions[tp] >= end and tp not in reported and len(taken) < num_messages:
                taken.append(FakeEof(tp[0], tp[1], end))
                reported.add(tp)
        return taken


class FakeEventConsumer:
    """A group member given every partition of the topics it subscribes to, at the offsets
    its `on_assign` chose or else the group's committed ones; `seek` moves a position, as a
    rewind does."""

    def __init__(self, kafka: FakeTransactionalKafka) -> None:
        self._kafka = kafka
        self._positions: dict[TP, int] = {}
        self._reported: set[TP] = set()
        self.seeks: list[tuple[str, int, int]] = []
        self.closed = False

    def subscribe(
        self,
        topics: list[str],
        *,
        on_assign: OnAssign,
        on_revoke: OnAssign,
        on_lost: OnAssign | None = None,
    ) -> None:
        assigned = [
            TopicPartition(topic, p)
            for topic in topics
            for p in range(self._kafka.partitions[topic])
        ]
        on_assign(self, assigned)
        for tp in assigned:
            key = (tp.topic, tp.partition)
            self._positions.setdefault(key, self._kafka.committed.get(key, 0))

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # OFFSET_BEGINNING and the like are negative
            self._positions[(tp.topic, tp.partition)] = max(tp.offset, 0)

    def poll(self, timeout: float) -> FakeMessage | None:
        taken = self._take(1)
        message = taken[0] if taken else None
        self._kafka.on_poll(message)
        return message

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        taken = self._take(num_messages)
        self._kafka.on_consume(taken)
        return taken

    def _take(self, num_messages: int) -> list[Any]:
        return self._kafka.take(
            self._positions, self._reported, num_messages, eof=self._kafka.partition_eof
        )

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))
        self._positions[(partition.topic, partition.partition)] = partition.offset

    def consumer_group_metadata(self) -> object:
        return self

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic, p in self._positions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._positions[(tp.topic, tp.partition)])
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, *, cached: bool
    ) -> tuple[int, int] | None:
        return (0, len(self._kafka.logs[(partition.topic, partition.partition)]))

    def list_topics(self, *, timeout: float) -> Any:
        return _ClusterInfo(
            {
                topic: _TopicInfo(dict.fromkeys(range(count)))
                for topic, count in self._kafka.partitions.items()
            }
        )

    def close(self) -> None:
        self.closed = True


class FakeTransactionalProducer:
    """Records and offsets reach the broker only with `commit_transaction`; once fenced,
    every call fails with librdkafka's fatal `_FENCED`."""

    def __init__(self, kafka: FakeTransactionalKafka) -> None:
        self._kafka = kafka
        self._pending: list[Committed] = []
        self._offsets: list[TopicPartition] = []
        self.in_transaction = False
        self.fenced = False

    def _check(self) -> None:
        if self.fenced:
            raise KafkaException(
                KafkaError(
                    KafkaError._FENCED, "fenced by a newer transactional producer", fatal=True
                )
            )

    def init_transactions(self, timeout: float) -> None:
        self._kafka.fence()
        self._kafka.producers.append(self)

    def begin_transaction(self) -> None:
        self._check()
        assert not self.in_transaction, "one transaction at a time"
        self.in_transaction = True

    def produce(
        self, topic: str, *, key: str | bytes | None, value: bytes | None, **extra: Any
    ) -> None:
        self._check()
        assert self.in_transaction, "transactional records are produced in a transaction"
        error, self._kafka.fail_next_produce = self._kafka.fail_next_produce, None
        if error is not None:
            raise KafkaException(error)
        self._pending.append(Committed(topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None:
        self._check()
        self._offsets = list(positions)

    def commit_transaction(self, timeout: float) -> None:
        self._check()
        error, self._kafka.fail_next_commit = self._kafka.fail_next_commit, None
        if error is not None:
            raise KafkaException(error)
        self._kafka.records.extend(self._pending)
        for tp in self._offsets:
            self._kafka.committed[(tp.topic, tp.partition)] = tp.offset
        self._end()

    def abort_transaction(self, timeout: float) -> None:
        self._check()
        self._kafka.aborted += 1
        self._end()

    def _end(self) -> None:
        self._pending, self._offsets, self.in_transaction = [], [], False

    def flush(self, timeout: float) -> int:
        return 0


class FakeReader:
    """A consumer outside any group (`api.replayer.ports.EventReader`): reads the partitions
    it is assigned and always reports their end."""

    def __init__(self, kafka: FakeTransactionalKafka) -> None:
        self._kafka = kafka
        self._positions: dict[TP, int] = {}
        self._reported: set[TP] = set()
        self.closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        count = self._kafka.partitions.get(topic, 0)
        return _ClusterInfo({topic: _TopicInfo(dict.fromkeys(range(count)))})

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return (0, len(self._kafka.logs[(partition.topic, partition.partition)]))

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        """The first offset at or after each time (ms in `offset`), -1 when none is."""
        found = []
        for tp in partitions:
            log = self._kafka.logs[(tp.topic, tp.partition)]
            at = next((m.offset() for m in log if m.timestamp()[1] >= tp.offset), -1)
            found.append(TopicPartition(tp.topic, tp.partition, at))
        return found

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._positions = {(tp.topic, tp.partition): tp.offset for tp in partitions}
        self._reported.clear()

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        taken = self._kafka.take(self._positions, self._reported, num_messages, eof=True)
        self._kafka.on_consume(taken)
        return taken

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True, slots=True)
class Applied:
    """One batch the projector stored: its rows and the offsets after them, together."""

    upserts: tuple[DeliveryUpsert, ...]
    attempts: tuple[AttemptInsert, ...]
    offsets: tuple[Offset, ...]


class FakeDatabase:
    """The projector's database as batches, not rows (the SQL is tested on PostgreSQL):
    what each committed `apply_batch` stored, and the offsets it left. `fail_next_apply`
    loses the connection at the next apply, which then stores nothing."""

    def __init__(self) -> None:
        self.applied: list[Applied] = []
        self.offsets: dict[TP, int] = {}
        self.connections: list[FakeHistory] = []
        self.rebuilt = 0
        self.fail_next_apply = False

    def open(self) -> FakeHistory:
        connection = FakeHistory(self)
        self.connections.append(connection)
        return connection


class FakeHistory:
    """One connection to a `FakeDatabase` (`api.projector.ports.History`)."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self.closed = False

    def stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        assert not self.closed
        return {tp: o for tp, o in self._database.offsets.items() if tp[0] in topics}

    def apply_batch(
        self,
        upserts: Sequence[DeliveryUpsert],
        attempts: Sequence[AttemptInsert],
        offsets: Sequence[Offset],
    ) -> None:
        assert not self.closed
        database = self._database
        if database.fail_next_apply:
            database.fail_next_apply = False
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        database.applied.append(Applied(tuple(upserts), tuple(attempts), tuple(offsets)))
        for offset in offsets:
            tp = (offset.topic, offset.partition)
            database.offsets[tp] = max(database.offsets.get(tp, 0), offset.next_offset)

    def rebuild(self) -> None:
        self._database.rebuilt += 1
        self._database.applied.clear()
        self._database.offsets.clear()

    def close(self) -> None:
        self.closed = True


class FakeRecoverDatabase:
    """The history as a recover or replay job reads it: the rows a recover selects and the
    attempts a replay numbers on from, by subscription (the SQL is tested on PostgreSQL).
    `fail_next_select` loses the connection at the next select."""

    def __init__(self) -> None:
        self.rows: dict[str, list[StoredCommand]] = defaultdict(list)
        self.attempts: dict[str, dict[str, int]] = defaultdict(dict)
        """The highest attempt number of each delivery, by subscription (what a replay reads)."""
        self.connections: list[FakeRecoverHistory] = []
        self.fail_next_select = False

    def open(self) -> FakeRecoverHistory:
        connection = FakeRecoverHistory(self)
        self.connections.append(connection)
        return connection


class FakeRecoverHistory:
    """One connection to a `FakeRecoverDatabase` (`api.replayer.ports.History`)."""

    def __init__(self, database: FakeRecoverDatabase) -> None:
        self._database = database
        self.broken = False
        self.closed = False

    def recoverable(
        self, subscription_id: str, *, since: datetime, until: datetime, statuses: Sequence[str]
    ) -> list[StoredCommand]:
        assert not self.closed
        assert not self.broken
        if self._database.fail_next_select:
            self._database.fail_next_select = False
            self.broken = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return list(self._database.rows[subscription_id])

    def attempts_made(self, subscription_id: str, *, since: datetime) -> dict[str, int]:
        assert not self.closed
        return dict(self._database.attempts[subscription_id])

    def close(self) -> None:
        self.closed = True
