"""Fixtures and helpers of the router's integration tests: topics and codec, a router running
in a thread, a fast event producer, and a `read_committed` reader of the router's output."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import CollectorRegistry

from core.json_value import JsonValue
from core.records import DeadLetter, DeliveryCommand, DomainEvent, Ref
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.kafka import admin_config, producer_config, reader_config
from hookline.runtime.producing import produce_within
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from router.service import Router
from tests.waiting import eventually

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def task_event(
    n: int,
    *,
    event_type: str = "task.created",
    tenant: str = "acme",
    project: str = "p-1",
    assignee: str | None = None,
    title_chars: int = 10,
) -> DomainEvent:
    data: dict[str, JsonValue]
    match event_type:
        case "task.created":
            data = {"id": f"t-{n}", "title": "x" * title_chars, "project_id": project}
            data["assignee_id"] = assignee
        case "task.assigned":
            data = {"id": f"t-{n}", "title": "x" * title_chars, "assignee_id": assignee or "u-1"}
        case "meeting.ended":
            data = {
                "id": f"m-{n}",
                "title": "standup",
                "ended_at": "2025-03-04T12:00:00.000Z",
                "attendee_ids": ["u-1", "u-2"],
            }
        case _:
            raise AssertionError(event_type)
    return DomainEvent(
        id=str(uuid.uuid4()),
        type=event_type,
        tenant=tenant,
        occurred_at=NOW,
        subject=Ref(event_type.split(".", maxsplit=1)[0], str(data["id"])),
        actor=Ref("user", "u-9"),
        data=data,
    )


@pytest.fixture
def subscriptions(settings: Settings, runtime: CodecRuntime) -> Iterator[SubscriptionLog]:
    log = SubscriptionLog(settings, runtime.codec, client_id="router-test-subs")
    yield log
    log.close()


def produce_raw(settings: Settings, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
    """Write (key, value) records to the events topic; returns their (partition, offset)."""
    producer = Producer(producer_config(settings, client_id="router-test-events", linger_ms=20))
    placed: dict[int, tuple[int, int]] = {}
    for n, (key, value) in enumerate(records):

        def delivered(err: KafkaError | None, msg: Message, n: int = n) -> None:
            assert err is None, err
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None
            assert offset is not None
            placed[n] = (partition, offset)

        produce_within(
            producer, settings.topic("events"), key=key, value=value, on_delivery=delivered
        )
    assert producer.flush(60) == 0
    return [placed[n] for n in range(len(records))]


def produce_events(
    settings: Settings, runtime: CodecRuntime, events: Sequence[DomainEvent]
) -> list[tuple[int, int]]:
    return produce_raw(settings, [(e.subject.id, runtime.codec.encode_event(e)) for e in events])


def end_offsets(settings: Settings, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """High watermarks, from an admin client (a consumer's own query waits behind its fetch)."""
    latest = OffsetSpec.latest()
    admin = AdminClient(admin_config(settings))  # kept alive until the futures complete
    futures = admin.list_offsets(
        {TopicPartition(topic, p): latest for p in partitions}, request_timeout=10
    )
    return {tp.partition: future.result(timeout=15).offset for tp, future in futures.items()}


class CommittedReader:
    """Reads a topic from the beginning with isolation.level=read_committed."""

    def __init__(self, settings: Settings, topic: str) -> None:
        config = reader_config(settings, client_id=f"router-test-{uuid.uuid4().hex[:8]}")
        config["enable.partition.eof"] = True
        self._consumer = Consumer(config)
        self._settings = settings
        self._topic = topic
        partitions = self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self._partitions = sorted(partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._end_seen: dict[int, int] = {}  # partition -> offset of its last end-of-partition
        self.messages: list[Message] = []

    def poll(self, timeout_s: float = 0.2) -> int:
        """Read what is there now; returns how many new messages."""
        got = 0
        for message in self._consumer.consume(10_000, timeout_s):
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                self._end_seen[partition] = offset
                continue
            self.messages.append(message)
            got += 1
        return got

    def wait_for(self, predicate: Callable[[], bool], what: str, *, timeout_s: float) -> None:
        """Read on until `predicate()` holds."""

        def polled() -> bool:
            self.poll()
            return predicate()

        eventually(polled, what, timeout_s=timeout_s, interval_s=0)

    def drain(self, *, timeout_s: float = 30.0) -> None:
        """Read everything committed before this call: until each partition reports its end
        at or past the end offset it had when the call began."""
        ends = end_offsets(self._settings, self._topic, self._partitions)
        self.wait_for(
            lambda: all(self._end_seen.get(p, 0) >= end for p, end in ends.items() if end > 0),
            f"{self._topic} read to its end offsets {ends}",
            timeout_s=timeout_s,
        )

    def commands(self, runtime: CodecRuntime) -> list[DeliveryCommand]:
        return [runtime.codec.decode_delivery_command(m.value() or b"") for m in self.messages]

    def dead_letters(self, runtime: CodecRuntime) -> list[DeadLetter]:
        return [runtime.codec.decode_dead_letter(m.value() or b"") for m in self.messages]

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def commands_reader(settings: Settings, runtime: CodecRuntime) -> Iterator[CommittedReader]:
    reader = CommittedReader(settings, settings.topic("deliveries"))
    yield reader
    reader.close()


class RunningRouter:
    """A Router in a thread; `stop()` drains it and re-raises what it failed with."""

    def __init__(self, settings: Settings, *, batch_max_events: int = 1000) -> None:
        self.registry = CollectorRegistry()
        self.router = Router(settings, self.registry, batch_max_events=batch_max_events)
        self.stopping = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-router", daemon=True)

    def _run(self) -> None:
        try:
            self.router.run(self.stopping)
        except BaseException as exc:  # noqa: BLE001 -- re-raised by stop() in the test's thread
            self.failure = exc

    def start(self, *, timeout_s: float = 60.0) -> None:
        self._thread.start()

        def ready() -> bool:
            assert self.failure is None, self.failure
            return self.router.ready

        eventually(ready, "the router is ready", timeout_s=timeout_s)

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, dict(labels or {})) or 0.0

    def wait_routed(self, records: int, *, timeout_s: float = 60.0) -> None:
        """Wait until `records` events are committed (routed or dead-lettered)."""

        def routed() -> bool:
            assert self.failure is None, self.failure
            return self.metric("hookline_router_events_total") >= records

        eventually(routed, f"{records} events routed", timeout_s=timeout_s)

    def stop(self) -> None:
        if self._thread.ident is None:  # never started
            return
        self.stopping.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "router did not stop"
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def running_router(settings: Settings, runtime: CodecRuntime) -> Iterator[RunningRouter]:
    router = RunningRouter(settings)
    yield router
    router.stop()
