"""The transactional outbox on real PostgreSQL and Kafka: only committed rows are published,
in order; a relay killed between publish and mark loses nothing after restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import psycopg
import pytest

from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from producers.errors import InvalidEvent
from producers.outbox import OutboxRelay, write_outbox
from producers.publisher import build_event
from tests.waiting import eventually

from .conftest import decode_all, read_events

pytestmark = pytest.mark.integration


def _task(n: int, subject: str = "t-1") -> dict[str, str | None]:
    return {"id": subject, "title": f"version {n}", "project_id": "p-1", "assignee_id": None}


def _unpublished(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


def test_only_committed_rows_are_published_once(
    settings: Settings, runtime: CodecRuntime, outbox_dsn: str
) -> None:
    committed = build_event("task.created", subject=("task", "t-1"), data=_task(1))
    rolled_back = build_event("task.created", subject=("task", "t-2"), data=_task(2, "t-2"))
    with psycopg.connect(outbox_dsn) as conn:
        with conn.transaction():
            write_outbox(conn, committed)

        def change_that_fails() -> None:
            with conn.transaction():
                write_outbox(conn, rolled_back)
                raise RuntimeError("the service's own change failed")

        with pytest.raises(RuntimeError):
            change_that_fails()
        bad = build_event("task.created", subject=("task", "t-3"), data={"id": "t-3"})
        with pytest.raises(InvalidEvent) as caught, conn.transaction():
            write_outbox(conn, bad)
        assert caught.value.field == "title"
    relay = OutboxRelay(settings, outbox_dsn, client_id="test-relay")
    try:
        assert relay.relay_once() == 1
        assert relay.relay_once() == 0
    finally:
        relay.close()
    assert [e.id for e in decode_all(runtime, read_events(settings))] == [committed.id]
    assert _unpublished(outbox_dsn) == 0


_CRASHING_RELAY = """
import os, signal, sys
from hookline.runtime.settings import Settings
from producers.outbox import OutboxRelay

class KilledBeforeMarking(OutboxRelay):
    def _mark(self, cur, ids):
        os.kill(os.getpid(), signal.SIGKILL)  # published and acknowledged, never marked

KilledBeforeMarking(Settings.load(), sys.argv[1], batch_size=int(sys.argv[2])).relay_once()
"""


def test_a_relay_killed_between_publish_and_mark_loses_nothing(
    settings: Settings, runtime: CodecRuntime, outbox_dsn: str
) -> None:
    events = [
        build_event("task.created", subject=("task", "t-1"), data=_task(n)) for n in range(30)
    ]
    with psycopg.connect(outbox_dsn) as conn, conn.transaction():
        for event in events:
            write_outbox(conn, event)
    assert settings.kafka_bootstrap is not None
    env = {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKLINE_TOPIC_PREFIX": settings.topic_prefix,
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
    }
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_RELAY, outbox_dsn, "10"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    first_ten = [e.id for e in events[:10]]
    assert [e.id for e in decode_all(runtime, read_events(settings))] == first_ten
    assert _unpublished(outbox_dsn) == 30

    relay = OutboxRelay(settings, outbox_dsn, client_id="test-relay", batch_size=10)
    try:
        while relay.relay_once():
            pass
    finally:
        relay.close()
    # one key, so one partition: the order on it is the order of publishing
    published = decode_all(runtime, read_events(settings))
    assert [e.id for e in published] == first_ten + [e.id for e in events]
    assert published[0] == published[10]  # a duplicate is the same event, id and all
    assert _unpublished(outbox_dsn) == 0


def test_the_running_relay_publishes_a_row_soon_after_commit(
    settings: Settings, runtime: CodecRuntime, outbox_dsn: str
) -> None:
    relay = OutboxRelay(settings, outbox_dsn, client_id="test-relay", idle_s=30)
    stopping = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stopping,))
    thread.start()
    try:
        eventually(lambda: relay.ready, "the relay is ready")
        event = build_event("task.created", subject=("task", "t-1"), data=_task(1))
        with psycopg.connect(outbox_dsn) as conn, conn.transaction():
            write_outbox(conn, event)
        # the relay idles for 30 s between scans: only the NOTIFY can wake it this soon
        eventually(lambda: relay.published >= 1, "the relay wakes on NOTIFY", timeout_s=20)
    finally:
        stopping.set()
        thread.join(60)
    assert not thread.is_alive()
    assert [e.id for e in decode_all(runtime, read_events(settings))] == [event.id]
