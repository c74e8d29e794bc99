"""Fixtures of the deliverer's integration tests: topics, subscriptions, commands, a running
deliverer in a thread, and readers of its output topics (real broker, receivers on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from core.ids import delivery_id
from core.records import (
    DeadLetter,
    DeliveryAttempt,
    DeliveryCommand,
    DomainEvent,
    StoredSecret,
    Subscription,
    utc_ms,
)
from core.secretbox import SecretBox
from core.signing import generate_secret
from core.webhook import render_body
from deliverer.service import Deliverer
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.kafka import producer_config, reader_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable
from hookline.runtime.topics import ensure_topics
from schemas.records_avro import RecordCodec
from tests.factories import subscription
from tests.waiting import eventually_async

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture
def dsettings(settings: Settings) -> Settings:
    """Settings for receivers on 127.0.0.1 with a short schedule; topics in place."""
    tuned = settings.with_changes(
        allowed_target_networks=LOCAL,
        delivery_timeout_s=3.0,
        retry_delays_s=(0.2, 0.2),
    )
    ensure_topics(tuned)
    return tuned


@dataclass
class Kit:
    """Writes subscriptions and commands the way the API and the router do."""

    settings: Settings
    codec: RecordCodec
    log: SubscriptionLog
    producer: Producer
    box: SecretBox
    table: SubscriptionTable
    secrets: dict[str, list[str]] = field(default_factory=dict)

    def subscription(
        self,
        url: str,
        *,
        ordered: bool = False,
        rate_limit: float | None = None,
        status: str = "active",
        previous_secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        sealed_headers: Mapping[str, str] | None = None,
        tenant: str = "default",
        sub_id: str | None = None,
    ) -> Subscription:
        """`headers` are written in clear, as before values were sealed; `sealed_headers`
        sealed, as the API writes them now."""
        sub_id = sub_id or str(uuid.uuid4())
        secret = generate_secret()
        now = utc_ms(datetime.now(UTC))
        stored = [StoredSecret(self.box.seal(secret, subscription_id=sub_id), None)]
        self.secrets[sub_id] = [secret]
        if previous_secret is not None:
            expires = now + timedelta(hours=24)
            sealed = self.box.seal(previous_secret, subscription_id=sub_id)
            stored.append(StoredSecret(sealed, expires))
            self.secrets[sub_id].append(previous_secret)
        sub = subscription(
            sub_id,
            "*",
            at=now,
            tenant=tenant,
            url=url,
            headers=dict(headers or {}),
            sealed_headers={
                name: self.box.seal_header(value, subscription_id=sub_id, name=name)
                for name, value in (sealed_headers or {}).items()
            },
            rate_limit=rate_limit,
            ordered=ordered,
            status=status,
            secrets=tuple(stored),
        )
        self.log.put(sub)
        assert self.table.wait_for(sub_id, version=1, timeout_s=10)
        return sub

    def command(
        self, sub: Subscription, *, data: Mapping[str, object] | None = None
    ) -> DeliveryCommand:
        event_id = str(uuid.uuid4())
        now = utc_ms(datetime.now(UTC))
        payload = render_body(
            type="task.created",
            occurred_at=now,
            tenant=sub.tenant,
            subject={"type": "task", "id": "t1"},
            actor=None,
            data=data if data is not None else {"id": "t1", "title": "hello"},
        )
        return DeliveryCommand(
            delivery_id=delivery_id(event_id, sub.id),
            event_id=event_id,
            event_type="task.created",
            tenant=sub.tenant,
            subscription_id=sub.id,
            occurred_at=now,
            payload=payload,
            attempt=0,
            created_at=now,
            not_before=None,
            origin="route",
            job_id=None,
            last_error=None,
        )

    def send(self, commands: Sequence[DeliveryCommand]) -> None:
        topic = self.settings.topic("deliveries")
        acks = Acks(self.producer, timeout_s=60)
        for command in commands:
            value = self.codec.encode_delivery_command(command)
            acks.produce(topic, key=command.subscription_id, value=value)
        acks.wait()


@contextmanager
def open_kit(settings: Settings, codec: RecordCodec) -> Iterator[Kit]:
    assert settings.secret_key is not None
    table = SubscriptionTable(settings, codec, client_id="test-deliverer-table")
    table.start()
    assert table.wait_ready(30)
    log = SubscriptionLog(settings, codec, client_id="test-deliverer-subs")
    producer = Producer(
        producer_config(settings, client_id="test-deliverer-commands")
        | {"message.max.bytes": 8 * 1024 * 1024, "linger.ms": 20}
    )
    box = SecretBox.from_base64(settings.secret_key.value)
    try:
        yield Kit(settings, codec, log, producer, box, table)
    finally:
        producer.flush(10)
        log.close()
        table.close()


@pytest.fixture
def kit(dsettings: Settings, runtime: CodecRuntime) -> Iterator[Kit]:
    with open_kit(dsettings, runtime.codec) as opened:
        yield opened


class RunningDeliverer:
    """A Deliverer in a thread of this process, stopped (drained) on exit."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.service = Deliverer(settings, self.registry, client_id=f"test-{uuid.uuid4().hex[:6]}")
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.service.run(self.stopping)
        except BaseException as exc:
            self.error = exc
            raise

    async def start(self) -> None:
        self._thread.start()
        await eventually_async(
            lambda: self.service.ready or self.error is not None,
            "the deliverer is ready or failed",
            timeout_s=60,
        )
        assert self.error is None, self.error

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.to_thread(self._thread.join, 60)
        assert not self._thread.is_alive(), "the deliverer did not stop"
        assert self.error is None, self.error

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, dict(labels or {}))
        return 0.0 if value is None else value


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningDeliverer]:
    deliverer = RunningDeliverer(settings)
    await deliverer.start()
    try:
        yield deliverer
    finally:
        await deliverer.stop()


class TopicReader:
    """Reads a whole topic from its start, decoding as it goes (poll without blocking long)."""

    def __init__(self, settings: Settings, topic: str, decode: Callable[[bytes], object]) -> None:
        self._consumer = Consumer(reader_config(settings, client_id=f"reader-{uuid.uuid4().hex}"))
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._decode = decode
        self.records: list[object] = []

    def read(self) -> list[object]:
        for message in self._consumer.consume(num_messages=1000, timeout=0):
            value = message.value()
            if message.error() is None and value is not None:
                self.records.append(self._decode(value))
        return self.records

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def outputs(dsettings: Settings, runtime: CodecRuntime) -> Iterator[Outputs]:
    out = Outputs(dsettings, runtime.codec)
    yield out
    out.close()


class Outputs:
    """The deliverer's output topics: attempts, dead letters, events."""

    def __init__(self, settings: Settings, codec: RecordCodec) -> None:
        self._attempts = TopicReader(
            settings, settings.topic("attempts"), codec.decode_delivery_attempt
        )
        self._dead = TopicReader(settings, settings.topic("dead-letters"), codec.decode_dead_letter)
        self._events = TopicReader(settings, settings.topic("events"), codec.decode_event)

    def attempts(self) -> list[DeliveryAttempt]:
        return [r for r in self._attempts.read() if isinstance(r, DeliveryAttempt)]

    def dead_letters(self) -> list[DeadLetter]:
        return [r for r in self._dead.read() if isinstance(r, DeadLetter)]

    def events(self) -> list[DomainEvent]:
        return [r for r in self._events.read() if isinstance(r, DomainEvent)]

    def close(self) -> None:
        self._attempts.close()
        self._dead.close()
        self._events.close()


class FakeDNS(AbstractResolver):
    """Answers from a table, as a DNS server under an attacker's control might."""

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        return None
