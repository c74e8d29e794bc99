"""The event ids the API published lately, by tenant: what `POST /v1/events` judges a
repeated id against (`core.event_dedupe`).

One row per (tenant, id) in `published_events`, shared by every API process through
PostgreSQL, so a retry answered by another process is judged the same. A row older than the
window no longer counts and is taken over by the next publish of its id; `forget` deletes
those and trims each tenant to its newest `max_per_tenant`, so a tenant publishing fast can
shorten only its own window, never grow the table without bound.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from core.event_dedupe import SeenEvent

_CLAIM: Final = """
    INSERT INTO published_events AS p (tenant, event_id, digest, occurred_at, published_at, sent)
    VALUES (%(tenant)s, %(event_id)s, %(digest)s, %(occurred_at)s, %(now)s, false)
    ON CONFLICT (tenant, event_id) DO UPDATE
        SET digest = EXCLUDED.digest, occurred_at = EXCLUDED.occurred_at,
            published_at = EXCLUDED.published_at, sent = false
        WHERE p.published_at < %(window_start)s
    RETURNING true
"""
_SEEN: Final = (
    "SELECT digest, occurred_at, sent FROM published_events WHERE tenant = %s AND event_id = %s"
)
_SENT: Final = "UPDATE published_events SET sent = true WHERE tenant = %s AND event_id = %s"
_EXPIRED: Final = "DELETE FROM published_events WHERE published_at < %s"
_OVER_CAP: Final = """
    DELETE FROM published_events AS p USING (
        SELECT tenant, event_id FROM (
            SELECT tenant, event_id, row_number() OVER (
                PARTITION BY tenant ORDER BY published_at DESC, event_id DESC
            ) AS newest
            FROM published_events
        ) AS ranked WHERE newest > %s
    ) AS old
    WHERE p.tenant = old.tenant AND p.event_id = old.event_id
"""


async def claim(
    pool: AsyncConnectionPool,
    *,
    tenant: str,
    event_id: str,
    digest: bytes,
    occurred_at: datetime,
    now: datetime,
    window_start: datetime,
) -> SeenEvent | None:
    """Record a first publish of `event_id` (none, or only one older than `window_start`):
    None. Else what it was published with, untouched."""
    params = {
        "tenant": tenant,
        "event_id": event_id,
        "digest": digest,
        "occurred_at": occurred_at,
        "now": now,
        "window_start": window_start,
    }
    async with pool.connection() as conn:
        claimed = await (await conn.execute(_CLAIM, params)).fetchone()
        if claimed is not None:
            return None
        async with conn.cursor(row_factory=class_row(SeenEvent)) as cur:
            await cur.execute(_SEEN, [tenant, event_id])
            return await cur.fetchone()


async def mark_sent(pool: AsyncConnectionPool, *, tenant: str, event_id: str) -> None:
    """Kafka acknowledged the event: a repeat of it is answered without sending again."""
    async with pool.connection() as conn:
        await conn.execute(_SENT, [tenant, event_id])


async def forget(pool: AsyncConnectionPool, *, window_start: datetime, max_per_tenant: int) -> int:
    """Delete ids older than the window, then each tenant's beyond its newest
    `max_per_tenant`; the number deleted."""
    async with pool.connection() as conn:
        expired = await conn.execute(_EXPIRED, [window_start])
        over = await conn.execute(_OVER_CAP, [max_per_tenant])
        return expired.rowcount + over.rowcount
