"""Turns delivery records into idempotent upserts of the history tables.

A record proposes a status at a time (`core.delivery_status`); the upsert keeps the row's
greatest (terminal, status_at, status_rank) key, ties settled as `settle` says, so applying
records twice or out of order gives the same rows. Times come from the records, never from
the clock, so a rebuild from the topics reproduces every row exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Final

import psycopg
from psycopg.types.json import Json

from api.model.db import drop_projection, ensure_schema
from core.delivery_status import DeliveryStatus, status_key, status_of_outcome
from core.records import DeadLetter, DeliveryAttempt, DeliveryCommand


@dataclass(frozen=True, slots=True)
class DeliveryUpsert:
    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    tenant: str
    status: DeliveryStatus
    status_terminal: bool
    status_at: datetime
    status_rank: int
    next_attempt_at: datetime | None
    last_error: str | None
    occurred_at: datetime | None
    payload: bytes | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptInsert:
    delivery_id: str
    attempt: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None
    outcome: str
    next_attempt_at: datetime | None
    origin: str | None
    request_headers: Json
    request_body: str | None
    response_headers: Json
    dns_ms: int | None
    connect_ms: int | None
    ttfb_ms: int | None


@dataclass(frozen=True, slots=True)
class Offset:
    topic: str
    partition: int
    next_offset: int


def _upsert(
    *,
    ids: DeliveryCommand | DeliveryAttempt,
    status: DeliveryStatus,
    at: datetime,
    next_attempt_at: datetime | None,
    last_error: str | None,
    command: DeliveryCommand | None,
) -> DeliveryUpsert:
    key = status_key(status, at)
    return DeliveryUpsert(
        delivery_id=ids.delivery_id,
        event_id=ids.event_id,
        event_type=ids.event_type,
        subscription_id=ids.subscription_id,
        tenant=ids.tenant,
        status=status,
        status_terminal=key.terminal,
        status_at=at,
        status_rank=key.rank,
        next_attempt_at=next_attempt_at,
        last_error=last_error,
        occurred_at=None if command is None else command.occurred_at,
        payload=None if command is None else command.payload,
        created_at=at,
        updated_at=at,
    )


def from_command(command: DeliveryCommand) -> DeliveryUpsert:
    """A new, re-sent (recover, redeliver, replay) or test delivery: pending from its time."""
    return _upsert(
        ids=command,
        status="pending",
        at=command.created_at,
        next_attempt_at=None,
        last_error=command.last_error,
        command=command,
    )


def from_attempt(attempt: DeliveryAttempt) -> tuple[DeliveryUpsert, AttemptInsert]:
    upsert = _upsert(
        ids=attempt,
        status=status_of_outcome(attempt.outcome),
        at=attempt.at,
        next_attempt_at=attempt.next_attempt_at if attempt.outcome == "retrying" else None,
        last_error=attempt.error,
        command=None,
    )
    row = AttemptInsert(
        delivery_id=attempt.delivery_id,
        attempt=attempt.attempt,
        at=attempt.at,
        status_code=attempt.status_code,
        duration_ms=attempt.duration_ms,
        error=attempt.error,
        response_excerpt=attempt.response_excerpt,
        outcome=attempt.outcome,
        next_attempt_at=attempt.next_attempt_at,
        origin=attempt.origin,
        request_headers=Json(dict(attempt.request_headers)),
        request_body=attempt.request_body,
        response_headers=Json(dict(attempt.response_headers)),
        dns_ms=attempt.timings.dns_ms,
        connect_ms=attempt.timings.connect_ms,
        ttfb_ms=attempt.timings.ttfb_ms,
    )
    return upsert, row


def from_dead_letter(letter: DeadLetter) -> DeliveryUpsert | None:
    """An exhausted delivery is dead; an undecodable record (no command) is not a delivery."""
    if letter.command is None:
        return None
    return _upsert(
        ids=letter.command,
        status="dead",
        at=letter.at,
        next_attempt_at=None,
        last_error=letter.error,
        command=letter.command,
    )


_NEW_KEY: Final = "(EXCLUDED.status_terminal, EXCLUDED.status_at, EXCLUDED.status_rank)"
_OLD_KEY: Final = "(d.status_terminal, d.status_at, d.status_rank)"
_KEY_WINS: Final = f"{_NEW_KEY} > {_OLD_KEY}"
_KEY_TIES: Final = f"{_NEW_KEY} = {_OLD_KEY}"


def _follow_key(column: str, *, collate: str = "") -> str:
    """The winner's value; at an equal key the greatest (nulls ignored), as
    `core.delivery_status.settle` says, so the row does not depend on arrival order."""
    return (
        f"{column} = CASE WHEN {_KEY_WINS} THEN EXCLUDED.{column}"
        f" WHEN {_KEY_TIES} THEN GREATEST(d.{column}{collate}, EXCLUDED.{column}{collate})"
        f" ELSE d.{column} END"
    )


_FOLLOW_KEY: Final = ", ".join(
    [
        *(
            f"{column} = CASE WHEN {_KEY_WINS} THEN EXCLUDED.{column} ELSE d.{column} END"
            for column in ("status", "status_terminal", "status_at", "status_rank")
        ),
        _follow_key("next_attempt_at"),
        _follow_key("last_error", collate=' COLLATE "C"'),  # code point order, as in Python
    ]
)
# only our own column names are joined into the statement
UPSERT_DELIVERY: Final = (
    "INSERT INTO deliveries AS d (delivery_id, event_id, event_type, subscription_id, tenant,"  # noqa: S608
    " status, status_terminal, status_at, status_rank, next_attempt_at, last_error,"
    " occurred_at, payload, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (delivery_id) DO UPDATE SET "
    + _FOLLOW_KEY
    + ", occurred_at = COALESCE(d.occurred_at, EXCLUDED.occurred_at)"
    ", payload = COALESCE(d.payload, EXCLUDED.payload)"
    ", created_at = LEAST(d.created_at, EXCLUDED.created_at)"
    ", updated_at = GREATEST(d.updated_at, EXCLUDED.updated_at)"
)
INSERT_ATTEMPT: Final = (
    "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, duration_ms, error,"
    " response_excerpt, outcome, next_attempt_at, origin, request_headers, request_body,"
    " response_headers, dns_ms, connect_ms, ttfb_ms)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)
STORE_OFFSET: Final = (
    "INSERT INTO projector_offsets AS o (topic, partition, next_offset) VALUES (%s, %s, %s)"
    " ON CONFLICT (topic, partition)"
    " DO UPDATE SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset)"
)


def apply_batch(
    conn: psycopg.Connection[object],
    upserts: Sequence[DeliveryUpsert],
    attempts: Sequence[AttemptInsert],
    offsets: Sequence[Offset],
) -> None:
    """Rows and the offsets after them in one transaction: exactly-once projection."""
    with conn.transaction(), conn.cursor() as cur:
        if upserts:
            cur.executemany(UPSERT_DELIVERY, [_row(u) for u in upserts])
        if attempts:
            cur.executemany(INSERT_ATTEMPT, [_row(a) for a in attempts])
        if offsets:
            cur.executemany(STORE_OFFSET, [_row(o) for o in offsets])


def _row(record: DeliveryUpsert | AttemptInsert | Offset) -> tuple[object, ...]:
    """The record's fields in order, as they are: `dataclasses.astuple` deep-copies every
    value (the attempt log's JSON too), which was half the projector's CPU under load."""
    return tuple(getattr(record, field.name) for field in fields(record))


def stored_offsets(
    conn: psycopg.Connection[object], topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT topic, partition, next_offset FROM projector_offsets WHERE topic = ANY(%s)",
            [list(topics)],
        )
        rows: list[tuple[str, int, int]] = cur.fetchall()  # type: ignore[assignment]
    return {(topic, partition): offset for topic, partition, offset in rows}


@dataclass(frozen=True, slots=True)
class PostgresHistory:
    """The history tables over one connection (`api.projector.ports.History`)."""

    conn: psycopg.Connection[object]
    schema: str

    def stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        return stored_offsets(self.conn, topics)

    def apply_batch(
        self,
        upserts: Sequence[DeliveryUpsert],
        attempts: Sequence[AttemptInsert],
        offsets: Sequence[Offset],
    ) -> None:
        apply_batch(self.conn, upserts, attempts, offsets)

    def rebuild(self) -> None:
        """Drop the read model's tables and create them empty (`--rebuild`)."""
        drop_projection(self.conn, self.schema)
        ensure_schema(self.conn, self.schema)

    def close(self) -> None:
        self.conn.close()
