"""The delivery history the API serves: rows of the read model the projector writes.

Queries are literal SQL with parameters; rows map to frozen dataclasses with `class_row`.
Every query takes the tenant (None = the admin, who sees all), so tenant isolation is in
the SQL, not left to the handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from core.cursors import decode_cursor, encode_cursor
from core.errors import InvalidField

_DELIVERY_COLUMNS: Final = (
    "delivery_id, event_id, event_type, subscription_id, tenant, status, next_attempt_at,"
    " last_error, occurred_at, created_at, updated_at, status_at"
)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    tenant: str
    status: str
    next_attempt_at: datetime | None
    last_error: str | None
    occurred_at: datetime | None
    created_at: datetime
    updated_at: datetime
    status_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt and its log: the request as sent (signatures and custom header values
    redacted), the response's head and excerpt, the time of each phase."""

    attempt: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None
    outcome: str
    next_attempt_at: datetime | None
    origin: str | None
    request_headers: dict[str, str]
    request_body: str | None
    response_headers: dict[str, str]
    dns_ms: int | None
    connect_ms: int | None
    ttfb_ms: int | None


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """What is needed to send a delivery again: its ids, the exact payload, and how many
    attempts its history holds (the re-sent attempts are numbered on from there)."""

    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    tenant: str
    occurred_at: datetime
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    tenant: str | None
    subscription_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[DeliveryRow, ...]
    next_cursor: str | None


def _where(query: DeliveryFilter, cursor: tuple[datetime, str] | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (
        ("tenant", query.tenant),
        ("subscription_id", query.subscription_id),
        ("event_id", query.event_id),
        ("event_type", query.event_type),
        ("status", query.status),
    ):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if query.since is not None:
        clauses.append("created_at >= %s")
        params.append(query.since)
    if query.until is not None:
        clauses.append("created_at < %s")
        params.append(query.until)
    if cursor is not None:
        clauses.append("(created_at, delivery_id) < (%s, %s)")
        params.extend(cursor)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _parse_cursor(text: str | None) -> tuple[datetime, str] | None:
    if text is None:
        return None
    at, delivery_id = decode_cursor(text, arity=2)
    try:
        return datetime.fromisoformat(at), delivery_id
    except ValueError:
        raise InvalidField("cursor", "not a cursor returned by this API") from None


async def list_deliveries(
    pool: AsyncConnectionPool, query: DeliveryFilter, *, limit: int, cursor: str | None
) -> Page:
    """Newest first, keyset-paginated on (created_at, delivery_id)."""
    where, params = _where(query, _parse_cursor(cursor))
    statement = (
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries{where}"  # noqa: S608 - columns and clauses are ours
        " ORDER BY created_at DESC, delivery_id DESC LIMIT %s"
    )
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(statement, [*params, limit + 1])
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor((rows[-1].created_at.isoformat(), rows[-1].delivery_id)) if more else None
    )
    return Page(tuple(rows), next_cursor)


async def get_delivery(
    pool: AsyncConnectionPool, delivery_id: str, *, tenant: str | None
) -> tuple[DeliveryRow, tuple[AttemptRow, ...]] | None:
    where, params = _where(DeliveryFilter(tenant=tenant), None)
    where = (where + " AND" if where else " WHERE") + " delivery_id = %s"
    async with pool.connection() as conn:
        async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
            await cur.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries{where}",  # noqa: S608
                [*params, delivery_id],
            )
            row = await cur.fetchone()
        if row is None:
            return None
        async with conn.cursor(row_factory=class_row(AttemptRow)) as cur:
            await cur.execute(
                "SELECT attempt, at, status_code, duration_ms, error, response_excerpt, outcome,"
                " next_attempt_at, origin, request_headers, request_body, response_headers,"
                " dns_ms, connect_ms, ttfb_ms FROM delivery_attempts WHERE delivery_id = %s"
                " ORDER BY at, attempt",
                [delivery_id],
            )
            attempts = await cur.fetchall()
    return row, tuple(attempts)


_STORED: Final = (
    "SELECT delivery_id, event_id, event_type, subscription_id, tenant, occurred_at, payload,"
    " (SELECT COALESCE(MAX(a.attempt), 0) FROM delivery_attempts a"
    "  WHERE a.delivery_id = deliveries.delivery_id) AS attempts"
    " FROM deliveries WHERE payload IS NOT NULL AND occurred_at IS NOT NULL"
)


async def stored_command(
    pool: AsyncConnectionPool, delivery_id: str, *, tenant: str | None
) -> StoredCommand | None:
    """The delivery's payload, to send it again (None: unknown, other tenant, or not yet
    projected with its command)."""
    statement = _STORED + " AND delivery_id = %s"
    params: list[object] = [delivery_id]
    if tenant is not None:
        statement += " AND tenant = %s"
        params.append(tenant)
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(StoredCommand)) as cur:
        await cur.execute(statement, params)
        return await cur.fetchone()


def recoverable(
    conn: psycopg.Connection[object],
    subscription_id: str,
    *,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
) -> list[StoredCommand]:
    """The subscription's deliveries that became one of `statuses` from `since` until
    before `until`."""
    with conn.cursor(row_factory=class_row(StoredCommand)) as cur:
        cur.execute(
            _STORED + " AND subscription_id = %s AND status = ANY(%s) AND status_at >= %s"
            " AND status_at < %s ORDER BY created_at, delivery_id",
            [subscription_id, list(statuses), since, until],
        )
        return cur.fetchall()


def attempts_made(
    conn: psycopg.Connection[object], subscription_id: str, *, since: datetime
) -> dict[str, int]:
    """The highest attempt number of each of the subscription's deliveries created at or
    after `since`: what a replay from `since` numbers its attempts on from. A delivery's
    creation time is never before its event's, so one query covers the replay's range."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT d.delivery_id, MAX(a.attempt) FROM deliveries d"
            " JOIN delivery_attempts a ON a.delivery_id = d.delivery_id"
            " WHERE d.subscription_id = %s AND d.created_at >= %s GROUP BY d.delivery_id",
            [subscription_id, since],
        )
        rows: list[tuple[str, int]] = cur.fetchall()  # type: ignore[assignment]
    return dict(rows)
