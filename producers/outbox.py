"""The transactional outbox: events written in a service's own PostgreSQL transaction, then
published to `hookline.events` by a relay.

`write_outbox(conn, event)` validates and encodes the event and inserts it in the caller's
transaction, so the event exists if and only if the state change committed. `OutboxRelay`
claims unpublished rows in id order (`FOR UPDATE SKIP LOCKED`, so two relays never claim the
same row), publishes them, waits for Kafka's acknowledgement and only then marks them, all in
one database transaction. A crash between publish and mark rolls the marks back; the rows are
published again after restart, with the same bytes and so the same event id.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from confluent_kafka import Producer
from psycopg.rows import class_row

from core.records import DomainEvent
from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.errors import ProduceFailed
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from producers.errors import OutboxError
from producers.publisher import encode_event
from schemas.catalog import load_catalog, load_record_schemas
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

NOTIFY_CHANNEL: Final = "hookline_outbox"
_STOP_CHECK_S: Final = 0.25

OUTBOX_DDL: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    event_key    text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
"""

_INSERT: Final = """
INSERT INTO outbox (event_id, event_type, event_key, payload) VALUES (%s, %s, %s, %s)
"""
_CLAIM: Final = """
SELECT id, event_id::text AS event_id, event_key, payload
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_MARK: Final = "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)"


@functools.cache
def local_codec() -> RecordCodec:
    """An encode-only codec (no registry: the relay registers the writer schemas it sends)."""
    return RecordCodec(
        records=load_record_schemas(), catalog=load_catalog(), writer_lookup=lambda _fp: None
    )


def write_outbox(
    conn: psycopg.Connection[Any], event: DomainEvent, *, codec: RecordCodec | None = None
) -> None:
    """Insert `event` in the caller's open transaction; `InvalidEvent` before any write.

    Build the event with `producers.publisher.build_event(...)`. Without a `codec` the
    event is checked against the types hookline ships; pass a live one (a `Publisher`'s
    `codec`, or `open_codec(settings, client_id=..., follow_catalog=True).codec`) to write
    types registered at run time, validated against their latest version. Commit (or roll back) is
    the caller's: the relay sees the row only once the transaction commits.
    """
    value = encode_event(codec or local_codec(), event)
    conn.execute(_INSERT, (event.id, event.type, event.subject.id, value))
    conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


def create_outbox_table(conn: psycopg.Connection[Any]) -> None:
    """Run `OUTBOX_DDL` (idempotent) in its own transaction."""
    with conn.transaction():
        conn.execute(OUTBOX_DDL)


@dataclass(frozen=True, slots=True)
class _Row:
    """One claimed outbox row (psycopg's class_row maps columns to fields)."""

    id: int
    event_id: str
    event_key: str
    payload: bytes


class OutboxRelay:
    """Publishes committed outbox rows in id order and marks them once Kafka acknowledged.

    `relay_once()` handles one batch; `run(stopping)` loops, waking on the NOTIFY that
    `write_outbox` sends (and every `idle_s` regardless).
    """

    def __init__(
        self,
        settings: Settings,
        dsn: str,
        *,
        client_id: str = "outbox-relay",
        batch_size: int = 500,
        idle_s: float = 1.0,
        ack_timeout_s: float = 60.0,
    ) -> None:
        self._settings = settings
        self._dsn = dsn
        self._client_id = client_id
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._ack_timeout_s = ack_timeout_s
        self._topic = settings.topic("events")
        self._runtime: CodecRuntime | None = None
        self._producer: Producer | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._ready = threading.Event()
        self.published = 0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def open(self) -> None:
        """Connect, and register the writer schemas so every reader can decode what we send."""
        if self._conn is not None:
            return
        self._runtime = open_codec(self._settings, client_id=self._client_id)
        self._producer = Producer(
            producer_config(self._settings, client_id=self._client_id, linger_ms=5)
        )
        try:
            self._conn = psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise OutboxError(f"cannot connect: {exc}") from exc
        self._ready.set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._producer is not None:
            self._producer.flush(self._ack_timeout_s)
            self._producer = None
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def relay_once(self) -> int:
        """Publish and mark one batch of committed rows; returns how many."""
        self.open()
        assert self._conn is not None
        try:
            with self._conn.transaction(), self._conn.cursor(row_factory=class_row(_Row)) as cur:
                rows = cur.execute(_CLAIM, (self._batch_size,)).fetchall()
                if not rows:
                    return 0
                self._publish(rows)
                self._mark(cur, [row.id for row in rows])
        except psycopg.Error as exc:
            raise OutboxError(f"database: {exc}") from exc
        self.published += len(rows)
        return len(rows)

    def _publish(self, rows: list[_Row]) -> None:
        """Produce the rows and wait for every acknowledgement; a refusal rolls the marks
        back, so these rows go out again on the next try."""
        assert self._producer is not None
        acks = Acks(self._producer, timeout_s=self._ack_timeout_s)
        try:
            for row in rows:
                acks.produce(self._topic, key=row.event_key, value=row.payload)
            acks.wait()
        except ProduceFailed as exc:
            raise OutboxError(f"publish: {exc.reason}") from exc

    def _mark(self, cur: psycopg.Cursor[_Row], ids: list[int]) -> None:
        """Mark rows published; runs only after every one was acknowledged."""
        cur.execute(_MARK, (ids,))

    def _wait_for_rows(self, listener: psycopg.Connection[Any], stopping: threading.Event) -> None:
        """Until a NOTIFY, `idle_s`, or `stopping`, whichever comes first."""
        deadline = time.monotonic() + self._idle_s
        while not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            timeout_s = min(remaining, _STOP_CHECK_S)
            if list(listener.notifies(timeout=timeout_s, stop_after=1)):
                return

    def run(self, stopping: threading.Event) -> None:
        """Relay until `stopping` is set; raises (loudly) when it cannot continue."""
        self.open()
        try:
            with psycopg.connect(self._dsn, autocommit=True) as listener:
                listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not stopping.is_set():
                    if self.relay_once() < self._batch_size:  # else more may be waiting
                        self._wait_for_rows(listener, stopping)
        except psycopg.Error as exc:
            raise OutboxError(f"database: {exc}") from exc
        finally:
            self.close()
