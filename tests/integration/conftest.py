"""Fixtures shared by the integration tests of every service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from producers.outbox import create_outbox_table


@pytest.fixture
def runtime(settings: Settings) -> Iterator[CodecRuntime]:
    """The codec runtime (schema registry and record codec) over this test's fresh topics."""
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="test-codec")
    yield runtime
    runtime.close()


@pytest.fixture
def outbox_dsn(database_url: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema holding an empty outbox table."""
    schema = f"outbox_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    dsn = make_conninfo(database_url, options=f"-c search_path={schema}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_outbox_table(conn)
    yield dsn
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
