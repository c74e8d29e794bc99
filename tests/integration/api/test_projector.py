"""The projector: records produced here with the codec become history rows; applying them
twice or out of order changes nothing; `--rebuild` after dropping everything gives the same
rows; an undecodable record is dead-lettered with its coordinates."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import CollectorRegistry

from api.model.db import connect
from api.model.errors import ProjectionError
from api.projector.projection import stored_offsets
from api.projector.service import Projector
from core.records import DeadLetter, DeliveryAttempt, DeliveryCommand, utc_ms
from core.undecodable import REASONS
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.kafka import admin_config, producer_config
from hookline.runtime.settings import Settings
from tests.integration.api.conftest import command, drop_schema, read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration

T0 = utc_ms(datetime.now(UTC) - timedelta(minutes=10))


@pytest.fixture(autouse=True)
def _own_schema(settings: Settings) -> Iterator[None]:
    """Each test's history schema is dropped after it."""
    yield
    drop_schema(settings)


def _attempt(cmd: DeliveryCommand, n: int, outcome: str, **changes: Any) -> DeliveryAttempt:
    base = DeliveryAttempt(
        delivery_id=cmd.delivery_id,
        event_id=cmd.event_id,
        event_type=cmd.event_type,
        subscription_id=cmd.subscription_id,
        tenant=cmd.tenant,
        attempt=n,
        at=T0 + timedelta(seconds=10 * n),
        status_code=500,
        duration_ms=12,
        error="HTTP 500",
        response_excerpt="oops",
        outcome=outcome,  # type: ignore[arg-type]
        next_attempt_at=None,
    )
    return dataclasses.replace(base, **changes)


def _letter(cmd: DeliveryCommand) -> DeadLetter:
    return DeadLetter(
        id=str(uuid.uuid4()),
        reason="exhausted",
        at=T0 + timedelta(seconds=31),
        subscription_id=cmd.subscription_id,
        command=cmd,
        source_topic="x.retry.10h",
        source_partition=0,
        source_offset=7,
        raw_value=None,
        error="HTTP 500",
    )


class Writer:
    def __init__(self, settings: Settings, runtime: CodecRuntime) -> None:
        self.settings = settings
        self.codec = runtime.codec
        self.producer = Producer(producer_config(settings, client_id="test-writer"))

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.producer.produce(self.settings.topic(topic), key=key, value=value)

    def command(self, cmd: DeliveryCommand) -> None:
        self.send("deliveries", cmd.subscription_id, self.codec.encode_delivery_command(cmd))

    def attempt(self, attempt: DeliveryAttempt) -> None:
        self.send("attempts", attempt.delivery_id, self.codec.encode_delivery_attempt(attempt))

    def letter(self, letter: DeadLetter) -> None:
        self.send(
            "dead-letters", letter.subscription_id or "", self.codec.encode_dead_letter(letter)
        )

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _story(writer: Writer) -> dict[str, DeliveryCommand]:
    """Four deliveries with different fates, some records deliberately out of order."""
    sub = "sub-" + uuid.uuid4().hex[:6]
    c = {
        name: command(subscription_id=sub, created_at=T0)
        for name in ("ok", "dead", "gone", "early")
    }
    writer.command(c["ok"])
    writer.attempt(_attempt(c["ok"], 1, "retrying", next_attempt_at=T0 + timedelta(seconds=15)))
    writer.attempt(_attempt(c["ok"], 2, "delivered", status_code=200, error=None))
    writer.command(c["dead"])
    writer.attempt(_attempt(c["dead"], 1, "retrying", next_attempt_at=T0 + timedelta(seconds=15)))
    writer.letter(_letter(c["dead"]))  # the dead letter before the last attempt
    writer.attempt(_attempt(c["dead"], 3, "dead", at=T0 + timedelta(seconds=30)))
    writer.command(c["gone"])
    writer.attempt(_attempt(c["gone"], 1, "failed", status_code=410, error="HTTP 410"))
    writer.attempt(_attempt(c["early"], 1, "delivered", status_code=204, error=None))
    writer.command(c["early"])  # the command after its own success
    writer.send("attempts", "garbage", b"\xc3\x01not avro at all")
    writer.flush()
    return c


def _snapshot(settings: Settings) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with connect(settings) as conn:
        deliveries: list[Any] = conn.execute(
            "SELECT * FROM deliveries ORDER BY delivery_id"
        ).fetchall()
        attempts: list[Any] = conn.execute(
            "SELECT * FROM delivery_attempts ORDER BY delivery_id, at, attempt"
        ).fetchall()
    return deliveries, attempts


class Running:
    def __init__(self, settings: Settings, *, rebuild: bool = False) -> None:
        self.projector = Projector(settings, CollectorRegistry(), rebuild=rebuild)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.projector.run, args=(self.stopping,))
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _projected(settings: Settings, expected_attempts: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            _deliveries, attempts = _snapshot(settings)
        except psycopg.errors.UndefinedTable:
            return False
        return len(attempts) >= expected_attempts

    return check


def test_history_rows_follow_the_records(settings: Settings, runtime: CodecRuntime) -> None:
    writer = Writer(settings, runtime)
    c = _story(writer)
    running = Running(settings)
    try:
        eventually(lambda: running.projector.ready, "the projector is ready")
        eventually(_projected(settings, 6), "six deliveries projected")
        deliveries, attempts = _snapshot(settings)
        rows = {row[0]: row for row in deliveries}
        status = {name: rows[cmd.delivery_id][5] for name, cmd in c.items()}
        assert status == {"ok": "delivered", "dead": "dead", "gone": "failed", "early": "delivered"}
        assert rows[c["early"].delivery_id][12] == c["early"].payload  # filled in late
        assert len(attempts) == 6

        # the same records again change nothing (idempotent upserts)
        before = _snapshot(settings)
        for name in ("ok", "dead"):
            writer.command(c[name])
        writer.attempt(_attempt(c["ok"], 1, "retrying", next_attempt_at=T0))
        writer.letter(_letter(c["dead"]))
        writer.flush()
        marker = command(subscription_id="marker", created_at=T0)
        writer.command(marker)
        writer.flush()
        eventually(
            lambda: any(r[0] == marker.delivery_id for r in _snapshot(settings)[0]),
            "the marker delivery projected",
        )
        after = _snapshot(settings)
        assert [r for r in after[0] if r[0] != marker.delivery_id] == before[0]
        assert after[1] == before[1]

        # a redelivery makes a dead delivery pending again, and its success wins
        again = dataclasses.replace(
            c["dead"], created_at=T0 + timedelta(minutes=5), origin="redeliver"
        )
        writer.command(again)
        writer.flush()
        eventually(
            lambda: {r[0]: r for r in _snapshot(settings)[0]}[again.delivery_id][5] == "pending",
            "the redelivered delivery pending again",
        )
    finally:
        running.stop()

    letters = read_records(settings, settings.topic("dead-letters"), count=3)
    undecodable = [
        letter
        for letter in (runtime.codec.decode_dead_letter(r.value() or b"") for r in letters)
        if letter.reason in REASONS
    ]
    assert len(undecodable) == 1
    assert undecodable[0].reason == "unknown schema"  # its header names a schema nobody has
    assert undecodable[0].source_topic == settings.topic("attempts")
    assert undecodable[0].raw_value == b"\xc3\x01not avro at all"


def test_rebuild_reproduces_the_same_rows(settings: Settings, runtime: CodecRuntime) -> None:
    writer = Writer(settings, runtime)
    _story(writer)
    running = Running(settings)
    try:
        eventually(lambda: running.projector.ready, "the projector is ready")
        eventually(_projected(settings, 6), "six deliveries projected")
    finally:
        running.stop()
    original = _snapshot(settings)

    drop_schema(settings)  # the whole database schema, tokens and offsets too
    rebuilt = Running(settings, rebuild=True)
    try:
        eventually(lambda: rebuilt.projector.ready, "the rebuilt projector is ready")
        eventually(_projected(settings, 6), "six deliveries projected")
    finally:
        rebuilt.stop()
    assert _snapshot(settings) == original

    rebuilt = Running(settings, rebuild=True)  # rebuild over existing tables, too
    try:
        eventually(lambda: rebuilt.projector.ready, "the rebuilt projector is ready")
        eventually(_projected(settings, 6), "six deliveries projected")
    finally:
        rebuilt.stop()
    assert _snapshot(settings) == original


class _Stopping:
    """The projector on a thread that keeps the error it stopped with."""

    def __init__(self, settings: Settings) -> None:
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        projector = Projector(settings, CollectorRegistry())

        def run() -> None:
            try:
                projector.run(self.stopping)
            except ProjectionError as exc:  # kept for the test to assert on
                self.error = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _stored_offset(settings: Settings, topic: str, partition: int) -> int | None:
    try:
        with connect(settings) as conn:
            return stored_offsets(conn, [topic]).get((topic, partition))
    except psycopg.errors.UndefinedTable:
        return None


def test_a_dead_letter_kafka_refuses_stops_the_projector_before_its_offset(
    settings: Settings, runtime: CodecRuntime
) -> None:
    """Regression: the projector produced dead letters without a delivery callback, so a
    letter the broker refused was lost while the offset of its record was stored past it."""
    letters = settings.topic("dead-letters")
    admin = AdminClient(admin_config(settings))
    limit = ConfigResource(
        ConfigResource.Type.TOPIC,
        letters,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "1024", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([limit]).values():
        future.result()
    attempts = settings.topic("attempts")
    placed: list[int] = []
    producer = Producer(producer_config(settings, client_id="test-writer"))
    producer.produce(
        attempts,
        partition=0,
        key=b"garbage",
        value=b"\xc3\x01" + os.urandom(8 * 1024),  # its letter carries it: over the limit
        on_delivery=lambda _err, msg: placed.append(msg.offset()),
    )
    assert producer.flush(30) == 0
    [offset] = placed

    stopping = _Stopping(settings)
    try:
        eventually(
            lambda: (
                not stopping.thread.is_alive()
                or (_stored_offset(settings, attempts, 0) or 0) > offset
            ),
            "the projector stopped or stored an offset past the refused letter's record",
            timeout_s=60,
        )
    finally:
        stopping.stop()
    assert isinstance(stopping.error, ProjectionError)
    assert "dead letter not written" in str(stopping.error)
    assert (_stored_offset(settings, attempts, 0) or 0) <= offset
