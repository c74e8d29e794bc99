"""Compacted topics read into memory: one row per key, the newer record winning.

One read-to-end core, `TopicReader`, serves both ways a compacted topic is read: a
`CompactedTable` follows its topic on a thread of its own (the subscriptions and jobs
tables), and the schema store reads to the end offsets on demand. Neither joins a consumer
group: every partition is assigned from its start and nothing is ever committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from hookline.runtime.errors import TableError
from hookline.runtime.kafka import ClientConfig, is_transient, reader_config, retry_transient
from hookline.runtime.settings import Settings
from schemas.errors import SchemaError

log = logging.getLogger(__name__)

V = TypeVar("V")

POLL_BATCH: Final = 500
FOLLOW_POLL_S: Final = 0.2
MISSING: Final = "the topic is missing; run 'hookline topics ensure'"

Latest = Callable[[V | None, V], V]
"""The row once `record` is read over `previous`; returning `previous` itself ignores it."""

ChangeListener = Callable[[str, V | None], None]


def last_written(_previous: V | None, record: V) -> V:
    """The plain compacted-topic rule: the record read last is the row."""
    return record


def apply_records(
    rows: Mapping[str, V], records: Iterable[tuple[str, V | None]], latest: Latest[V]
) -> tuple[dict[str, V], list[tuple[str, V | None]]]:
    """The rows after `records` (key and value; None is a tombstone), and the changes among
    them: a record `latest` ignores, or a tombstone of an absent key, changes nothing."""
    after = dict(rows)
    changes: list[tuple[str, V | None]] = []
    for key, record in records:
        previous = after.get(key)
        if record is None:
            if previous is not None:
                del after[key]
                changes.append((key, None))
            continue
        row = latest(previous, record)
        if row is not previous:
            after[key] = row
            changes.append((key, row))
    return after, changes


@dataclass(slots=True)
class Progress:
    """How far each partition is read, and whether that reaches given end offsets.

    Compaction and transaction markers leave gaps, so the last record's offset may stay below
    the end; an end-of-partition event says the end is reached. An end-of-partition event
    left over from an earlier read carries an older offset: a position never moves back."""

    positions: dict[int, int] = field(default_factory=dict)

    def start_at(self, partition: int, low: int) -> None:
        """Reading starts at the low watermark; anything below it is gone."""
        self.positions[partition] = max(self.positions.get(partition, 0), low)

    def read(self, partition: int, offset: int) -> None:
        self.start_at(partition, offset + 1)

    def at_end(self, partition: int, offset: int) -> None:
        self.start_at(partition, offset)

    def behind(self, ends: Mapping[int, int]) -> list[int]:
        return sorted(p for p, end in ends.items() if self.positions.get(p, 0) < end)


class TopicReader:
    """An assigned consumer of every partition of one topic, and how far it has read them.

    A broker that is recovering raises `KafkaException` (pass the call to `retry_transient`);
    a missing topic, a consumer error that is not transient, or a read not finished within
    `timeout_s` raise `TableError`. One thread owns a reader at a time.
    """

    def __init__(self, config: ClientConfig, topic: str, *, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._consumer = Consumer(
            {
                "group.id": "hookline-table-reader",  # required by librdkafka, never used
                **config,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        self._progress = Progress()
        self._assigned = False

    @property
    def positions(self) -> dict[int, int]:
        """A copy of the next offset to read, by partition."""
        return dict(self._progress.positions)

    def end_offsets(self) -> dict[int, int]:
        """The end offsets now; the first call assigns every partition from its start."""
        if not self._assigned:
            self._assign()
        ends: dict[int, int] = {}
        for partition in list(self._progress.positions):
            tp = TopicPartition(self.topic, partition)
            low, high = self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s)
            self._progress.start_at(partition, low)
            ends[partition] = high
        return ends

    def reached(self, ends: Mapping[int, int]) -> bool:
        return not self._progress.behind(ends)

    def poll(self, timeout_s: float) -> list[Message]:
        """The records that arrived, waiting up to `timeout_s` for the first of them."""
        # consume() waits out its whole timeout unless the batch fills; poll() returns at the
        # first record, so a write is read back in milliseconds
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        batch = [first, *self._consumer.consume(POLL_BATCH - 1, timeout=0)]
        return [message for message in batch if self._take(message)]

    def read_to_end(self) -> list[Message]:
        """The records up to the end offsets taken now, from where the last read stopped."""
        ends = self.end_offsets()
        found: list[Message] = []
        deadline = time.monotonic() + self._timeout_s
        while behind := self._progress.behind(ends):
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise TableError(self.topic, f"partitions {behind} not read in time")
            found.extend(self.poll(min(remaining_s, 1.0)))
        return found

    def close(self) -> None:
        self._consumer.close()

    def _assign(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=self._timeout_s)
        topic = metadata.topics.get(self.topic)
        if topic is not None and topic.error is not None and is_transient(topic.error):
            raise KafkaException(topic.error)
        if topic is None or topic.error is not None or not topic.partitions:
            raise TableError(self.topic, MISSING)
        partitions = sorted(topic.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        for partition in partitions:
            self._progress.start_at(partition, 0)
        self._assigned = True

    def _take(self, message: Message) -> bool:
        """Note how far `message` moves its partition; True when it is a record."""
        partition, offset, error = message.partition(), message.offset(), message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if partition is not None and offset is not None:
                    self._progress.at_end(partition, offset)
                return False
            if is_transient(error):  # the consumer fetches again once the leader is back
                return False
            raise TableError(self.topic, f"reading: {error.str()}")
        if partition is None or offset is None:
            return False
        self._progress.read(partition, offset)
        return True


class CompactedTable(Generic[V]):
    """A compacted topic in memory, row by record key, kept by a thread of its own.

    `ready` once it has read up to the end offsets taken when reading started (a broker that
    is recovering is waited for, as long as `retry_transient` waits), and for as long as its
    reader runs; it follows live writes after. Readers see an immutable snapshot, swapped
    whole. An undecodable record is logged with its coordinates and skipped. A reader that
    stops records its `failure` and is never restarted: whoever keeps the table calls
    `check()` in its loop and stops with that error.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        client_id: str,
        decode: Callable[[bytes], V],
        latest: Latest[V] = last_written,
        on_change: ChangeListener[V] | None = None,
    ) -> None:
        self.topic = topic
        self._config = reader_config(settings, client_id=client_id)
        self._decode = decode
        self._latest = latest
        self._on_change = on_change
        self._rows: Mapping[str, V] = MappingProxyType({})
        self._positions: Mapping[int, int] = {}
        self._caught_up = False
        self._failure: TableError | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{client_id}-table", daemon=True)

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> V | None:
        return self._rows.get(key)

    def snapshot(self) -> Mapping[str, V]:
        """Every row as of now (an immutable view; later changes make a new one)."""
        return self._rows

    @property
    def ready(self) -> bool:
        return self._caught_up and self._failure is None

    @property
    def failure(self) -> TableError | None:
        return self._failure

    def check(self) -> None:
        """Raise the error the reader stopped with, if it stopped."""
        if self._failure is not None:
            raise self._failure

    # -- waiting ---------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float) -> bool:
        """True once ready; False at the timeout or as soon as the reader stopped."""
        return self._wait(lambda: self._caught_up, timeout_s)

    def wait_until(self, holds: Callable[[Mapping[str, V]], bool], *, timeout_s: float) -> bool:
        """Wait until the rows satisfy `holds`; False at the timeout or if the reader stopped."""
        return self._wait(lambda: holds(self._rows), timeout_s)

    def wait_caught_up(self, ends: Mapping[int, int], *, timeout_s: float) -> bool:
        """Wait until every partition is read up to `ends` (end offsets the caller took after
        the writes it must see): the router's barrier, so an event is routed to every
        subscription written before it was published."""
        return self._wait(
            lambda: all(self._positions.get(p, 0) >= end for p, end in ends.items()), timeout_s
        )

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0 or self._failure is not None:
                    return False
                self._changed.wait(remaining_s)
            return True

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- the reader thread -----------------------------------------------------------------

    def _run(self) -> None:
        reader = TopicReader(self._config, self.topic)
        try:
            self._follow(reader)
        except BaseException as exc:
            if isinstance(exc, TableError):
                failure = exc
            else:  # a bug in a decode, latest or change hook: the table cannot go on
                failure = TableError(self.topic, f"the reader stopped: {exc!r}")
                failure.__cause__ = exc
            log.exception("%s", failure)
            with self._changed:
                self._failure = failure
                self._changed.notify_all()
        finally:
            reader.close()

    def _follow(self, reader: TopicReader) -> None:
        try:
            ends = retry_transient(reader.end_offsets, what=f"reading {self.topic}'s end offsets")
        except KafkaException as exc:
            raise TableError(self.topic, f"reading the end offsets: {exc}") from exc
        while not self._stopping.is_set():
            records = reader.poll(FOLLOW_POLL_S)
            rows, changes = (
                apply_records(self._rows, self._decoded(records), self._latest)
                if records
                else ({}, [])
            )
            positions = reader.positions
            caught_up = self._caught_up or reader.reached(ends)
            if changes or positions != self._positions or caught_up != self._caught_up:
                with self._changed:
                    if changes:
                        self._rows = MappingProxyType(rows)
                    self._positions = positions
                    self._caught_up = caught_up
                    self._changed.notify_all()
            if self._on_change is not None:
                for key, row in changes:
                    self._on_change(key, row)

    def _decoded(self, records: list[Message]) -> Iterator[tuple[str, V | None]]:
        for message in records:
            key, value = message.key(), message.value()
            if key is None:
                continue
            if value is None:
                yield key.decode(), None
                continue
            try:
                yield key.decode(), self._decode(value)
            except SchemaError as exc:
                log.error(  # noqa: TRY400  (the reason is in the message; no traceback needed)
                    "undecodable record at %s[%s]@%s: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )
