"""The PostgreSQL side of the API: the tables of the read model, in a schema named after the
topic prefix, so deployments (and tests) sharing one database stay apart.

`published_events` is the API's own: the event ids it published lately, by tenant
(`api.model.published`); a rebuild of the projection leaves it.

Tokens are no longer kept here (they live on the tokens topic); an `api_tokens` table left by
an older version is emptied onto the topic at API start (`api.http.auth.migrate_legacy_tokens`).

`ensure_schema` is idempotent and serialised with an advisory lock, since the API, the
projector and the replayer may all create it at start-up at once.
"""

from __future__ import annotations

import asyncio
from typing import Final

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from hookline.runtime.errors import SettingsError
from hookline.runtime.settings import Settings, env_name

PROJECTION_TABLES: Final = ("delivery_attempts", "deliveries", "projector_offsets")

_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id text PRIMARY KEY,
        event_id text NOT NULL,
        event_type text NOT NULL,
        subscription_id text NOT NULL,
        tenant text NOT NULL,
        status text NOT NULL,
        status_terminal boolean NOT NULL,
        status_at timestamptz NOT NULL,
        status_rank smallint NOT NULL,
        next_attempt_at timestamptz,
        last_error text,
        occurred_at timestamptz,
        payload bytea,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS deliveries_by_tenant"
    " ON deliveries (tenant, created_at DESC, delivery_id DESC)",
    "CREATE INDEX IF NOT EXISTS deliveries_by_subscription"
    " ON deliveries (subscription_id, status, status_at)",
    "CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event_id)",
    """
    CREATE TABLE IF NOT EXISTS delivery_attempts (
        delivery_id text NOT NULL,
        attempt integer NOT NULL,
        at timestamptz NOT NULL,
        status_code integer,
        duration_ms bigint NOT NULL,
        error text,
        response_excerpt text,
        outcome text NOT NULL,
        next_attempt_at timestamptz,
        PRIMARY KEY (delivery_id, at, attempt)
    )
    """,
    # each attempt's log, added after the table first shipped: rows written before it read
    # as an attempt with no origin, no body and no headers
    "ALTER TABLE delivery_attempts"
    " ADD COLUMN IF NOT EXISTS origin text,"
    " ADD COLUMN IF NOT EXISTS request_headers json NOT NULL DEFAULT '{}',"
    " ADD COLUMN IF NOT EXISTS request_body text,"
    " ADD COLUMN IF NOT EXISTS response_headers json NOT NULL DEFAULT '{}',"
    " ADD COLUMN IF NOT EXISTS dns_ms integer,"
    " ADD COLUMN IF NOT EXISTS connect_ms integer,"
    " ADD COLUMN IF NOT EXISTS ttfb_ms integer",
    """
    CREATE TABLE IF NOT EXISTS published_events (
        tenant text NOT NULL,
        event_id text NOT NULL,
        digest bytea NOT NULL,
        occurred_at timestamptz NOT NULL,
        published_at timestamptz NOT NULL,
        sent boolean NOT NULL,
        PRIMARY KEY (tenant, event_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS published_events_by_age ON published_events (published_at)",
    """
    CREATE TABLE IF NOT EXISTS projector_offsets (
        topic text NOT NULL,
        partition integer NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (topic, partition)
    )
    """,
)


def schema_name(settings: Settings) -> str:
    return settings.topic_prefix


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SettingsError(env_name("database_url"), "is not set: the PostgreSQL URL")
    return settings.database_url.value


def _lock_and_path(schema: str) -> tuple[sql.Composed, sql.Composed]:
    lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(schema))
    create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
    return lock, create


def search_path(schema: str) -> sql.Composed:
    return sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))


def ensure_schema(conn: psycopg.Connection[object], schema: str) -> None:
    """Create the schema and every table if missing (sync: projector, replayer, tests)."""
    lock, create = _lock_and_path(schema)
    with conn.transaction():
        conn.execute(lock)
        conn.execute(create)
        conn.execute(search_path(schema))
        for statement in _DDL:
            conn.execute(statement)


def drop_projection(conn: psycopg.Connection[object], schema: str) -> None:
    """Drop the read model's tables: `hookline projector --rebuild`."""
    lock, _create = _lock_and_path(schema)
    with conn.transaction():
        conn.execute(lock)
        for table in PROJECTION_TABLES:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )


def connect(settings: Settings) -> psycopg.Connection[object]:
    """A sync autocommit connection with the schema in place and on the search path."""
    conn: psycopg.Connection[object] = psycopg.connect(database_url(settings), autocommit=True)
    schema = schema_name(settings)
    ensure_schema(conn, schema)
    conn.execute(search_path(schema))
    return conn


async def open_pool(settings: Settings, *, max_size: int = 10) -> AsyncConnectionPool:
    """The API's pool; every connection has the schema on its search path."""
    schema = schema_name(settings)

    def prepare() -> None:
        with psycopg.connect(database_url(settings)) as conn:
            ensure_schema(conn, schema)

    await asyncio.to_thread(prepare)

    async def configure(conn: psycopg.AsyncConnection[object]) -> None:
        await conn.execute(search_path(schema))
        await conn.commit()

    pool: AsyncConnectionPool = AsyncConnectionPool(
        database_url(settings),
        min_size=1,
        max_size=max_size,
        configure=configure,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool
