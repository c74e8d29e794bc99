"""A hostile tenant never holds another tenant's webhooks (real broker, receivers on 127.0.0.1).

Each test reproduces one way a tenant used to stall others: an ordered subscription that
never answers in front of a shared partition, a `Retry-After: 290` in front of 5-second
retries, and a 20,000-event burst to one endpoint.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition

from core.records import DeliveryCommand
from core.retry import TIERS
from hookline.app.receiver import Answer, FailThenAnswer, Hang, Receiver, Slow
from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Settings
from tests.integration.deliverer.conftest import Kit, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


def _sub_ids_covering(partitions: int, per_partition: int) -> list[str]:
    """Subscription ids whose keys land `per_partition` times on every partition (librdkafka's
    default partitioner: CRC-32 of the key modulo the partition count)."""
    chosen: dict[int, list[str]] = defaultdict(list)
    while any(len(chosen[p]) < per_partition for p in range(partitions)):
        sub_id = str(uuid.uuid4())
        partition = zlib.crc32(sub_id.encode()) % partitions
        if len(chosen[partition]) < per_partition:
            chosen[partition].append(sub_id)
    return [sub_id for p in range(partitions) for sub_id in chosen[p]]


def _partitions_of(settings: Settings, keys: set[str]) -> set[int]:
    """The `deliveries` partitions the records keyed `keys` really landed on."""
    topic = settings.topic("deliveries")
    consumer = Consumer(reader_config(settings, client_id=f"test-where-{uuid.uuid4().hex[:6]}"))
    try:
        found: set[int] = set()
        for partition in range(settings.partitions):
            tp = TopicPartition(topic, partition)
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high <= 0:
                continue
            consumer.assign([TopicPartition(topic, partition, max(0, high - 2000))])
            deadline = time.monotonic() + 10
            done = False
            while not done and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=1000, timeout=0.5):
                    if message.error() is None and (message.key() or b"").decode() in keys:
                        found.add(partition)
                    done = done or (message.offset() or 0) >= high - 1
        return found
    finally:
        consumer.close()


def _records(settings: Settings, topics: list[str]) -> int:
    """Records written to `topics` (sums of end offsets: nothing here is compacted yet)."""
    consumer = Consumer(reader_config(settings, client_id=f"test-count-{uuid.uuid4().hex[:6]}"))
    try:
        total = 0
        for topic in topics:
            for partition in range(settings.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                total += high - low
        return total
    finally:
        consumer.close()


async def test_an_ordered_endpoint_that_never_answers_holds_only_itself(kit: Kit) -> None:
    settings = kit.settings.with_changes(delivery_timeout_s=5.0, retry_delays_s=(5.0, 300.0))
    kit.settings = settings
    behaviours = {"/hang": Hang()}
    async with Receiver(behaviours=behaviours, default=Answer()) as receiver:
        hostile = kit.subscription(receiver.url("/hang"), ordered=True, tenant="tenant-a")
        healthy = [
            kit.subscription(receiver.url(f"/b{n}"), tenant="tenant-b", sub_id=sub_id)
            for n, sub_id in enumerate(_sub_ids_covering(settings.partitions, 2))
        ]
        queued = [kit.command(hostile) for _ in range(1100)]
        await asyncio.to_thread(kit.send, queued)
        async with running(settings):
            # tenant B publishes while tenant A's commands are already queued and stuck
            await eventually_async(
                lambda: len(receiver.on("/hang")) >= 1,
                'len(receiver.on("/hang")) >= 1',
                timeout_s=30,
            )
            wanted = [kit.command(sub) for sub in healthy for _ in range(60)]
            started = time.monotonic()
            await asyncio.to_thread(kit.send, wanted)
            where = await asyncio.to_thread(_partitions_of, settings, {s.id for s in healthy})
            assert where == set(range(settings.partitions)), "tenant B covers every partition"
            await eventually_async(
                lambda: all(len(receiver.on(f"/b{n}")) >= 60 for n in range(len(healthy))),
                'all(len(receiver.on(f"/b{n}")) >= 60 for n in range(len(healthy)))',
                timeout_s=30,
            )
            took = time.monotonic() - started
            hanging_ids = {r.webhook_id for r in receiver.on("/hang")}
    print(f"tenant B's 6 x 60 webhooks behind 1,100 ordered hanging ones: {took:.2f} s")
    assert hanging_ids == {queued[0].event_id}, "the ordered lane only ever tried its head"


async def test_a_long_retry_after_never_delays_retries_due_sooner(kit: Kit) -> None:
    settings = kit.settings.with_changes(retry_delays_s=(5.0, 300.0))
    kit.settings = settings
    behaviours = {"/later": Answer(status=503, headers={"Retry-After": "290"})}
    async with Receiver(behaviours=behaviours, default=FailThenAnswer(failures=1)) as receiver:
        later = kit.subscription(receiver.url("/later"), tenant="tenant-a")
        flaky = [
            kit.subscription(receiver.url(f"/f{n}"), tenant="tenant-b", sub_id=sub_id)
            for n, sub_id in enumerate(_sub_ids_covering(settings.partitions, 4))
        ]
        await asyncio.to_thread(kit.send, [kit.command(later) for _ in range(300)])
        await asyncio.to_thread(kit.send, [kit.command(sub) for sub in flaky])
        async with running(settings) as deliverer:
            await eventually_async(
                lambda: all(len(receiver.on(f"/f{n}")) >= 2 for n in range(len(flaky))),
                'all(len(receiver.on(f"/f{n}")) >= 2 for n in range(len(flaky)))',
                timeout_s=60,
            )
            held = deliverer.metric("hookline_deliverer_backlogged_total", {"why": "held"})
        gaps = []
        for n in range(len(flaky)):
            first, second = receiver.on(f"/f{n}")[:2]
            gaps.append(second.received_at - first.received_at)
    print(f"first retries of 12 subscriptions behind 300 Retry-After: 290: {sorted(gaps)}")
    # the schedule's 5 s, its 20 % jitter, and 5 s of slack
    assert max(gaps) <= 5 * 1.2 + 5
    # the endpoint asked for 290 s of quiet: only the requests already under way reached it,
    # and the rest of its commands wait in its backlog
    asked = len(receiver.on("/later"))
    assert 1 <= asked <= 2 * settings.lane_concurrency
    assert len({r.webhook_id for r in receiver.on("/later")}) == asked, "nothing retried early"
    assert held > 0


async def test_a_burst_is_delivered_at_the_endpoints_pace_written_once(kit: Kit) -> None:
    burst = 20_000
    settings = kit.settings.with_changes(retry_delays_s=(5.0, 300.0))
    kit.settings = settings
    async with Receiver(default=Slow(0.05), record=False) as receiver:
        sub = kit.subscription(receiver.url("/burst"))
        commands: list[DeliveryCommand] = [kit.command(sub) for _ in range(burst)]
        await asyncio.to_thread(kit.send, commands)
        async with running(settings) as deliverer:
            await eventually_async(lambda: receiver.count >= 1, "receiver.count >= 1", timeout_s=30)
            started, busy_before = time.monotonic(), receiver.busy_s
            await eventually_async(
                lambda: receiver.count >= burst,
                "receiver.count >= burst",
                timeout_s=240,
                interval_s=0.2,
            )
            took = time.monotonic() - started
            # the mean number of requests the endpoint held at once over the burst
            held = (receiver.busy_s - busy_before) / took
            await eventually_async(
                lambda: (
                    deliverer.metric("hookline_deliverer_attempts_total", {"outcome": "delivered"})
                    >= burst
                ),
                "the burst counted as delivered",
                timeout_s=30,
            )
    rate = burst / took
    pace = settings.lane_concurrency / 0.05
    share = settings.lane_concurrency
    topics = [
        settings.topic(name)
        for name in ("deliveries", "deliverer-backlog", "attempts", "dead-letters")
    ] + [settings.topic(f"retry.{tier}") for tier in TIERS]
    written = await asyncio.to_thread(_records, settings, topics)
    print(
        f"burst of {burst}: {rate:.0f}/s (pace {pace:.0f}/s), {held:.1f} requests held at once"
        f" (peak {receiver.peak_in_flight}), {written / burst:.2f} records each"
    )
    # the endpoint gets its lane's whole share, and never more than that: the burst is
    # delivered at the endpoint's pace, not one request at a time nor through the backlog
    assert receiver.peak_in_flight == share
    assert held >= share / 2
    # with the event itself on `events`, at most 6 records per event across all topics
    assert written <= 5 * burst
    assert receiver.count == burst, "each delivered once"
