"""The publishers on the real broker: acknowledged events read back, bad payloads rejected
before anything is sent, the asyncio publisher, and close() flushing."""

from __future__ import annotations

import asyncio

import pytest

from core.records import Ref
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from producers.errors import InvalidEvent, PublishError, UnknownType
from producers.publisher import AsyncPublisher, Publisher
from schemas.errors import InvalidEventData, UnknownEventType

from .conftest import decode_all, end_offsets, read_events

pytestmark = pytest.mark.integration

TASK = {"id": "t-1", "title": "Write the report", "project_id": "p-1", "assignee_id": None}


def test_publish_returns_the_id_once_acknowledged_and_the_event_reads_back(
    settings: Settings, runtime: CodecRuntime
) -> None:
    with Publisher(settings, client_id="test-publisher", codec=runtime.codec) as publisher:
        event_id = publisher.publish(
            "task.created",
            subject={"type": "task", "id": "t-1"},
            data=TASK,
            actor=("user", "u-1"),
            tenant="acme",
            changes={"title": ["", "Write the report"]},
        )
    [message] = read_events(settings)
    assert message.key() == b"t-1"
    [event] = decode_all(runtime, [message])
    assert event.id == event_id
    assert event.type == "task.created"
    assert event.tenant == "acme"
    assert event.subject == Ref("task", "t-1")
    assert event.actor == Ref("user", "u-1")
    assert event.data == TASK
    assert event.changes == {"title": ["", "Write the report"]}


def test_a_bad_payload_raises_naming_the_field_and_nothing_is_sent(
    settings: Settings, runtime: CodecRuntime
) -> None:
    with Publisher(settings, client_id="test-publisher", codec=runtime.codec) as publisher:
        missing = {k: v for k, v in TASK.items() if k != "title"}
        with pytest.raises(InvalidEvent) as caught:
            publisher.publish("task.created", subject=("task", "t-1"), data=missing)
        assert caught.value.field == "title"
        assert isinstance(caught.value, InvalidEventData)
        with pytest.raises(InvalidEvent) as caught:
            publisher.publish("task.created", subject=("task", "t-1"), data={**TASK, "id": 7})
        assert caught.value.field == "id"
        with pytest.raises(InvalidEvent) as caught:
            publisher.publish("task.created", subject=("task", "t-1"), data=TASK, id="nope")
        assert caught.value.field == "id"
        with pytest.raises(InvalidEvent) as caught:
            publisher.publish("task.created", subject={"type": "task"}, data=TASK)
        assert caught.value.field == "subject"
        with pytest.raises(UnknownType) as unknown:
            publisher.publish("task.exploded", subject=("task", "t-1"), data=TASK)
        assert isinstance(unknown.value, UnknownEventType)
        assert isinstance(unknown.value, PublishError)
    assert set(end_offsets(settings, settings.topic("events")).values()) == {0}


def test_close_flushes_what_was_submitted(settings: Settings, runtime: CodecRuntime) -> None:
    publisher = Publisher(settings, client_id="test-publisher", codec=runtime.codec, linger_ms=50)
    futures = [
        publisher.submit("task.created", subject=("task", f"t-{n}"), data={**TASK, "id": f"t-{n}"})
        for n in range(200)
    ]
    publisher.close()
    assert all(f.done() for f in futures)
    ids = {f.result() for f in futures}
    assert {e.id for e in decode_all(runtime, read_events(settings))} == ids


async def test_the_async_publisher_awaits_each_acknowledgement(
    settings: Settings, runtime: CodecRuntime
) -> None:
    publisher = await AsyncPublisher.open(settings, client_id="test-async", codec=runtime.codec)
    async with publisher:
        ids = await asyncio.gather(
            *(
                publisher.publish(
                    "meeting.ended",
                    subject=("meeting", f"m-{n}"),
                    data={
                        "id": f"m-{n}",
                        "title": "standup",
                        "ended_at": "2025-03-04T12:00:00Z",
                        "attendee_ids": ["u-1"],
                    },
                    tenant="acme",
                )
                for n in range(50)
            )
        )
        with pytest.raises(InvalidEvent) as caught:
            await publisher.publish("meeting.ended", subject=("meeting", "m"), data={"id": "m"})
        assert caught.value.field == "title"
    assert len(set(ids)) == 50
    events = decode_all(runtime, await asyncio.to_thread(read_events, settings))
    assert {e.id for e in events} == set(ids)
    assert {e.data["ended_at"] for e in events} == {"2025-03-04T12:00:00.000Z"}
