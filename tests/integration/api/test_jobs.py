"""Jobs on the control topic, run by the replayer: replay events published before the
subscription existed, recover a dead-lettered delivery, redeliver one delivery; progress is
readable at /v1/jobs/{id}, survives a restart, and a job left mid-way resumes from it."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from api.http.context import RESOURCES
from api.model.db import connect
from api.model.jobs import JobTable, new_job
from api.projector.projection import apply_batch, from_command, from_dead_letter
from api.replayer.service import Replayer
from core.ids import delivery_id
from core.records import DeadLetter, DeliveryCommand, Job, utc_ms
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import producer_config
from hookline.runtime.settings import Settings
from schemas.records_avro import RecordCodec
from tests.factories import subscription
from tests.integration.api.conftest import Api, command, read_records, subscription_body
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.integration


async def _finished(api: Api, job_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = await api.ok("GET", f"/v1/jobs/{job_id}")
        return job if job["status"] != "running" else None

    return await eventually_async(ended, f"job {job_id} ends", timeout_s=timeout_s)


def _commands(
    api: Api, settings: Settings, *, job_id: str | None = None, origin: str, count: int
) -> list[DeliveryCommand]:
    codec: RecordCodec = api.client.app[RESOURCES].codec.codec

    def found() -> list[DeliveryCommand] | None:
        records = read_records(settings, settings.topic("deliveries"), count=1000, timeout_s=0.5)
        commands = [
            c
            for c in (codec.decode_delivery_command(r.value() or b"") for r in records)
            if c.origin == origin and (job_id is None or c.job_id == job_id)
        ]
        return commands if len(commands) >= count else None

    return eventually(found, f"{count} {origin} commands on the deliveries topic", interval_s=0)


def _task(n: int, tenant: str = "default") -> dict[str, Any]:
    return {
        "type": "task.created",
        "tenant": tenant,
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": f"Task {n}", "project_id": "p-1"},
    }


async def test_replay_delivers_events_from_before_the_subscription(
    api: Api, api_settings: Settings, replayer: Replayer
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    published = [(await api.ok("POST", "/v1/events", 202, json=_task(n)))["id"] for n in range(3)]
    await api.ok("POST", "/v1/events", 202, json=_task(9, tenant="other"))  # another tenant
    await api.ok(
        "POST",
        "/v1/events",
        202,
        json={
            "type": "webhook.ping",
            "subject": {"type": "s", "id": "s"},
            "data": {"subscription_id": "s"},
        },
    )  # a type the subscription does not take
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    job = await api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/replay",
        202,
        json={"since": since.isoformat()},
    )
    assert job["status"] == "running"
    assert job["kind"] == "replay"
    done = await _finished(api, job["id"])
    assert done["status"] == "done", done
    assert done["emitted"] == 3, str(done)
    assert done["scanned"] >= 5
    assert done["until"] is not None

    commands = _commands(api, api_settings, job_id=job["id"], origin="replay", count=3)
    assert sorted(c.event_id for c in commands) == sorted(published)
    for c in commands:
        assert c.delivery_id == delivery_id(c.event_id, sub["id"])
        assert c.subscription_id == sub["id"]
        assert c.payload.startswith(b'{"type":"task.created"')

    # progress lives on the control topic: a fresh reader (a restarted API) sees the same job
    runtime = open_codec(api_settings, client_id="test-restart")
    table = JobTable(api_settings, runtime.codec, client_id="test-restart")
    table.start()
    try:
        assert table.wait_ready(30)
        again = table.get(job["id"])
        assert again is not None
        assert (again.status, again.emitted, again.scanned) == ("done", 3, done["scanned"])
    finally:
        table.close()
        runtime.close()


def _dead(cmd: DeliveryCommand) -> DeadLetter:
    return DeadLetter(
        id=str(uuid.uuid4()),
        reason="exhausted",
        at=cmd.created_at + timedelta(seconds=1),
        subscription_id=cmd.subscription_id,
        command=cmd,
        source_topic="retry",
        source_partition=0,
        source_offset=0,
        raw_value=None,
        error="HTTP 500",
    )


async def test_recover_and_redeliver_resend_with_the_same_ids(
    api: Api, api_settings: Settings, replayer: Replayer
) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    # dead-lettered a minute ago: a recover takes what failed before it started
    dead = command(
        subscription_id=sub["id"], created_at=utc_ms(datetime.now(UTC) - timedelta(minutes=1))
    )
    old = command(subscription_id=sub["id"], created_at=utc_ms(datetime(2024, 1, 1, tzinfo=UTC)))
    ok = command(subscription_id=sub["id"])
    conn = connect(api_settings)
    try:
        upserts = [from_command(dead), from_command(old), from_command(ok)]
        letters = [from_dead_letter(_dead(dead)), from_dead_letter(_dead(old))]
        apply_batch(conn, upserts + [u for u in letters if u is not None], [], [])
    finally:
        conn.close()
    listed = await api.ok(
        "GET", "/v1/deliveries", params={"subscription_id": sub["id"], "status": "dead"}
    )
    assert {d["id"] for d in listed["data"]} == {dead.delivery_id, old.delivery_id}

    job = await api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/recover",
        202,
        json={"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
    )
    done = await _finished(api, job["id"])
    assert (done["status"], done["emitted"]) == ("done", 1)
    [recovered] = _commands(api, api_settings, job_id=job["id"], origin="recover", count=1)
    assert (recovered.delivery_id, recovered.event_id) == (dead.delivery_id, dead.event_id)
    assert recovered.payload == dead.payload
    assert recovered.attempt == 0

    sent = await api.ok("POST", f"/v1/deliveries/{ok.delivery_id}/redeliver", 202)
    assert sent["event_id"] == ok.event_id
    redelivered = [
        c
        for c in _commands(api, api_settings, origin="redeliver", count=1)
        if c.delivery_id == ok.delivery_id
    ]
    assert redelivered
    assert redelivered[0].event_id == ok.event_id


async def test_recover_takes_until_and_event_types_as_replay_does(
    api: Api, api_settings: Settings, replayer: Replayer
) -> None:
    """Regression: recover took only `since` and re-sent every failure after it."""
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(event_types=["*"]))
    now = utc_ms(datetime.now(UTC))
    half_hour_ago = now - timedelta(minutes=30)
    wanted = command(subscription_id=sub["id"], created_at=half_hour_ago)
    other_type = command(
        subscription_id=sub["id"], event_type="meeting.ended", created_at=half_hour_ago
    )
    too_late = command(subscription_id=sub["id"], created_at=now - timedelta(minutes=5))
    conn = connect(api_settings)
    try:
        dead = [wanted, other_type, too_late]
        letters = [from_dead_letter(_dead(c)) for c in dead]
        apply_batch(conn, [from_command(c) for c in dead] + [u for u in letters if u], [], [])
    finally:
        conn.close()

    job = await api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/recover",
        202,
        json={
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now - timedelta(minutes=10)).isoformat(),
            "event_types": ["task.*"],
        },
    )
    assert job["event_types"] == ["task.*"]
    done = await _finished(api, job["id"])
    assert (done["status"], done["emitted"]) == ("done", 1)
    [recovered] = _commands(api, api_settings, job_id=job["id"], origin="recover", count=1)
    assert recovered.delivery_id == wanted.delivery_id


async def test_a_recover_without_until_fixes_it_at_its_start(
    api: Api, api_settings: Settings, replayer: Replayer
) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    asked = datetime.now(UTC)
    job = await api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/recover",
        202,
        json={"since": (asked - timedelta(hours=1)).isoformat()},
    )
    assert job["until"] is None
    done = await _finished(api, job["id"])
    assert done["status"] == "done"
    assert done["until"] is not None
    assert datetime.fromisoformat(done["until"]) >= asked - timedelta(seconds=1)


def test_a_job_left_running_resumes_from_its_progress(settings: Settings) -> None:
    """A replayer died after scanning two of three events: the next one emits only the third."""
    from hookline.runtime.topics import ensure_topics
    from tests.integration.api.conftest import drop_schema

    ensure_topics(settings)
    runtime = open_codec(settings, client_id="test-resume")
    producer = Producer(producer_config(settings, client_id="test-resume"))
    codec = runtime.codec
    from core.records import DomainEvent, Ref

    now = utc_ms(datetime.now(UTC))
    sub = subscription("sub-resume", "*", at=now, tenant="default")
    producer.produce(
        settings.topic("subscriptions"), key=sub.id, value=codec.encode_subscription(sub)
    )
    events = [
        DomainEvent(
            id=str(uuid.uuid4()),
            type="webhook.ping",
            tenant="default",
            occurred_at=now,
            subject=Ref("s", "same-key"),
            actor=None,
            data={"subscription_id": "x"},
        )
        for _ in range(3)
    ]
    for event in events:  # one key: one partition, a known order
        producer.produce(settings.topic("events"), key="same-key", value=codec.encode_event(event))
    assert producer.flush(30) == 0
    job = dataclasses.replace(
        new_job(
            "replay",
            tenant="default",
            subscription_id=sub.id,
            since=now - timedelta(minutes=1),
            until=datetime.now(UTC) + timedelta(seconds=1),
        ),
        scanned=2,
        emitted=2,
    )
    producer.produce(settings.topic("control"), key=job.id, value=codec.encode_job(job))
    assert producer.flush(30) == 0

    service = Replayer(settings, CollectorRegistry())
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,))
    thread.start()
    table = JobTable(settings, codec, client_id="test-resume-jobs")
    table.start()
    try:

        def ended() -> Job | None:
            current = table.get(job.id)
            return current if current is not None and current.status != "running" else None

        found = eventually(ended, "the resumed job ends")
        assert (found.status, found.scanned, found.emitted) == ("done", 3, 3)
        records = read_records(settings, settings.topic("deliveries"), count=1)
        [resent] = [codec.decode_delivery_command(r.value() or b"") for r in records]
        assert resent.event_id == events[2].id
    finally:
        stopping.set()
        thread.join(30)
        table.close()
        runtime.close()
        drop_schema(settings)
