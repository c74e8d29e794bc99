"""The deliverer's per-subscription backlog: a local SQLite store and its compacted changelog.

A command its subscription cannot start now (lane busy, earlier commands backlogged, a retry
not yet due) is written once to the changelog topic `<prefix>.deliverer-backlog`, into the
partition of the `deliveries` partition it was read from, keyed by `seq`, and
kept in a local store on disk. `seq` is the command's offset in `deliveries`: the order of
the partition, so an ordered subscription's head is its smallest `seq`, and a retry keeps
its `seq` (and key), superseding its earlier entry. A finished command is a tombstone.

The store is a cache of the changelog, the Kafka Streams state-store pattern: when a
`deliveries` partition is assigned, its changelog partition is read from the start into the
store (`restore`) before any of its commands are handled, so a backlog moves with a
rebalance or a crash. Metadata travels in record headers, so a restore never decodes Avro.

SQLite (WAL, `synchronous=OFF`: durability is the changelog's) keeps memory bounded by its
page cache whatever the backlog's size, and answers "the next due commands of this
subscription" from one index.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from hookline.runtime.kafka import reader_config, retry_transient
from hookline.runtime.settings import Settings

PAGE_CACHE_KIB: Final = 16 * 1024
"""SQLite's page cache per connection: the store's share of the process's memory."""
RESTORE_BATCH: Final = 2000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS backlog (
    key TEXT NOT NULL,
    partition INTEGER NOT NULL,
    subscription_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    value BLOB NOT NULL,
    PRIMARY KEY (partition, key)
);
CREATE INDEX IF NOT EXISTS backlog_ready ON backlog (subscription_id, leased, due_ms, seq);
CREATE INDEX IF NOT EXISTS backlog_head ON backlog (subscription_id, seq);
CREATE INDEX IF NOT EXISTS backlog_partition ON backlog (partition);
CREATE INDEX IF NOT EXISTS backlog_due ON backlog (due_ms);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One backlogged command: where it belongs, its order, when it is due, its bytes."""

    key: str
    partition: int
    subscription_id: str
    seq: int
    due_ms: int
    created_ms: int
    value: bytes

    def row(self) -> tuple[str, int, str, int, int, int, bytes]:
        """The store's columns, in the order of its INSERT."""
        return (
            self.key,
            self.partition,
            self.subscription_id,
            self.seq,
            self.due_ms,
            self.created_ms,
            self.value,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("sub", self.subscription_id.encode()),
            ("seq", str(self.seq).encode()),
            ("due", str(self.due_ms).encode()),
            ("created", str(self.created_ms).encode()),
        ]


def entry_key(seq: int) -> str:
    """An entry's key: its offset in its `deliveries` partition (the changelog partition has
    the same number), so a retry, which keeps its offset, supersedes its own entry."""
    return str(seq)


class CorruptChangelog(Exception):
    """A changelog record without the headers the store needs."""


def entry_from_record(
    partition: int, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] | None
) -> Entry:
    found = dict(headers or ())
    try:
        return Entry(
            key=(key or b"").decode(),
            partition=partition,
            subscription_id=found["sub"].decode(),
            seq=int(found["seq"]),
            due_ms=int(found["due"]),
            created_ms=int(found["created"]),
            value=value,
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptChangelog(f"backlog changelog record {key!r}: {exc!r}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=FILE")
    return conn


@dataclass(frozen=True, slots=True)
class Taken:
    key: str
    partition: int
    seq: int
    value: bytes


_PUT: Final = "INSERT OR REPLACE INTO backlog VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
_DELETE: Final = "DELETE FROM backlog WHERE partition = ? AND key = ?"
TIMER_BUCKETS: Final = (("1m", 60_000), ("10m", 600_000), ("1h", 3_600_000), ("later", None))


class BacklogStore:
    """The local store, used from the deliverer's loop thread (restores use their own
    connection on a worker thread, on partitions the loop does not touch meanwhile)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)  # a cache of the changelog: always rebuilt
        self.path = path
        self._conn = _connect(path)
        self._conn.executescript(_SCHEMA)
        self._staged: list[tuple[str, list[tuple[object, ...]]]] = []

    def close(self) -> None:
        self._staged.clear()
        self._conn.close()
        for name in (
            self.path,
            *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")),
        ):
            name.unlink(missing_ok=True)

    def put(self, entry: Entry) -> None:
        """Insert or replace (a retry replaces its entry, unleased, with its new due time).
        Writes are staged and applied together, in order, in one transaction before the
        next read (`flush`): a burst costs one commit per batch, not one per command."""
        self._stage(_PUT, entry.row())

    def delete(self, partition: int, key: str) -> None:
        self._stage(_DELETE, (partition, key))

    def _stage(self, kind: str, row: tuple[object, ...]) -> None:
        if self._staged and self._staged[-1][0] == kind:
            self._staged[-1][1].append(row)
        else:
            self._staged.append((kind, [row]))

    def flush(self) -> None:
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        self._conn.execute("BEGIN")
        try:
            for kind, rows in staged:
                self._conn.executemany(kind, rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def count(self, subscription_id: str) -> int:
        self.flush()
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM backlog WHERE subscription_id = ?", (subscription_id,)
        ).fetchone()
        return int(count)

    def take(
        self, subscription_id: str, *, now_ms: int, limit: int, ordered: bool, ignore_due: bool
    ) -> list[Taken]:
        """Lease up to `limit` commands of one subscription that are due: the head only for
        an ordered one (and nothing while its head is leased or not due)."""
        self.flush()
        due_ms = 2**62 if ignore_due else now_ms
        if ordered:
            row = self._conn.execute(
                "SELECT key, partition, seq, value, leased, due_ms FROM backlog"
                " WHERE subscription_id = ? ORDER BY seq LIMIT 1",
                (subscription_id,),
            ).fetchone()
            if row is None or row[4] or row[5] > due_ms:
                return []
            rows = [row[:4]]
        else:
            rows = self._conn.execute(
                "SELECT key, partition, seq, value FROM backlog"
                " WHERE subscription_id = ? AND leased = 0 AND due_ms <= ?"
                " ORDER BY due_ms, seq LIMIT ?",
                (subscription_id, due_ms, limit),
            ).fetchall()
        if rows:
            self._conn.executemany(
                "UPDATE backlog SET leased = 1 WHERE partition = ? AND key = ?",
                [(row[1], row[0]) for row in rows],
            )
        return [Taken(*row) for row in rows]

    def next_due(self, subscription_id: str, *, ordered: bool) -> int | None:
        """When the subscription's next command falls due (its head's, when ordered); None
        when nothing is waiting unleased."""
        self.flush()
        if ordered:
            row = self._conn.execute(
                "SELECT due_ms, leased FROM backlog WHERE subscription_id = ? ORDER BY seq LIMIT 1",
                (subscription_id,),
            ).fetchone()
            return None if row is None or row[1] else int(row[0])
        row = self._conn.execute(
            "SELECT MIN(due_ms) FROM backlog WHERE subscription_id = ? AND leased = 0",
            (subscription_id,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def unlease(self, partition: int, key: str) -> None:
        """Give a leased entry back (its command was not attempted: stopping, revoked)."""
        self.flush()
        self._conn.execute(
            "UPDATE backlog SET leased = 0 WHERE partition = ? AND key = ?", (partition, key)
        )

    def drop_partitions(self, partitions: Iterable[int]) -> Counter[str]:
        """Forget the entries of partitions no longer owned; their counts by subscription."""
        self.flush()
        dropped: Counter[str] = Counter()
        for partition in partitions:
            for sub_id, count in self._conn.execute(
                "SELECT subscription_id, COUNT(*) FROM backlog WHERE partition = ?"
                " GROUP BY subscription_id",
                (partition,),
            ):
                dropped[sub_id] += count
            self._conn.execute("DELETE FROM backlog WHERE partition = ?", (partition,))
        return dropped

    def counts(self, partition: int) -> Counter[str]:
        self.flush()
        return Counter(
            dict(
                self._conn.execute(
                    "SELECT subscription_id, COUNT(*) FROM backlog WHERE partition = ?"
                    " GROUP BY subscription_id",
                    (partition,),
                ).fetchall()
            )
        )

    def oldest_created_ms(self, subscription_id: str) -> int | None:
        self.flush()
        row = self._conn.execute(
            "SELECT created_ms FROM backlog WHERE subscription_id = ? ORDER BY seq LIMIT 1",
            (subscription_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    def timers(self, now_ms: int) -> dict[str, int]:
        """Entries not yet due, by how far off they are."""
        self.flush()
        buckets: dict[str, int] = {}
        low = now_ms
        for name, width in TIMER_BUCKETS:
            high = 2**62 if width is None else now_ms + width
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM backlog WHERE due_ms > ? AND due_ms <= ?", (low, high)
            ).fetchone()
            buckets[name] = int(count)
            low = high
        return buckets


@dataclass(frozen=True, slots=True)
class Restored:
    partition: int
    entries: Counter[str]
    records: int
    seconds: float


def restore(
    settings: Settings,
    path: Path,
    topic: str,
    partition: int,
    *,
    cancelled: threading.Event,
    client_id: str,
) -> Restored | None:
    """Read one changelog partition from its start to its end offset (taken first) into the
    store at `path`; None when cancelled (the partition was revoked meanwhile)."""
    started = time.monotonic()
    consumer = Consumer(
        reader_config(settings, client_id=f"{client_id}-restore-{partition}")
        | {"enable.partition.eof": True}
    )
    records = 0
    try:
        tp = TopicPartition(topic, partition)
        low, high = retry_transient(lambda: _watermarks(consumer, tp), what="backlog end offsets")
        with closing(_connect(path)) as conn:
            conn.execute(
                "DELETE FROM backlog WHERE partition = ?", (partition,)
            )  # left over from an earlier ownership
            if high > low:
                consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
                for batch in _batches(consumer, high, cancelled):
                    records += len(batch)
                    _apply(conn, partition, batch)
            if cancelled.is_set():
                return None
            entries = Counter(
                dict(
                    conn.execute(
                        "SELECT subscription_id, COUNT(*) FROM backlog WHERE partition = ?"
                        " GROUP BY subscription_id",
                        (partition,),
                    ).fetchall()
                )
            )
    finally:
        # closing takes librdkafka a second: never on the way to the partition's first command
        threading.Thread(target=consumer.close, name="backlog-restore-close", daemon=True).start()
    return Restored(partition, entries, records, time.monotonic() - started)


def _watermarks(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    found = consumer.get_watermark_offsets(tp, timeout=10)
    if found is None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "backlog end offsets"))
    low, high = found
    return int(low), int(high)


_Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]


def _batches(consumer: Consumer, high: int, cancelled: threading.Event) -> Iterator[list[_Record]]:
    position = -1
    at_end = False
    while not at_end and position < high - 1 and not cancelled.is_set():
        batch: list[_Record] = []
        for message in consumer.consume(num_messages=RESTORE_BATCH, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end = True
                elif error.fatal():
                    raise KafkaException(error)
                continue
            offset = message.offset()
            assert offset is not None
            position = max(position, offset)
            batch.append((message.key(), message.value(), message.headers()))
        if batch:
            yield batch


def _apply(conn: sqlite3.Connection, partition: int, batch: list[_Record]) -> None:
    conn.execute("BEGIN")
    try:
        for key, value, headers in batch:
            if value is None:
                conn.execute(_DELETE, (partition, (key or b"").decode()))
                continue
            conn.execute(_PUT, entry_from_record(partition, key, value, headers).row())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
