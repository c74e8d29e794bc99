"""The deliverer's shell (`DeliveryLoop` over Dispatcher and KafkaIO) driven through in-memory
fakes of its ports: admission, backlog, order, Retry-After, budget, drain and commits."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from core.ids import delivery_id
from core.outcome import Response
from core.records import DeliveryCommand, StoredSecret, Subscription
from core.secretbox import SecretBox
from core.signing import generate_secret
from deliverer.loop import DeliveryLoop
from deliverer.metrics import DelivererMetrics
from deliverer.ports import CommitReports, Ports
from deliverer.requests import SigningKeys
from hookline.runtime.settings import Settings
from tests.factories import subscription
from tests.fakes import (
    FakeConsumer,
    FakeProducer,
    FakeSender,
    FakeSubscriptions,
    ManualClock,
    restore_nothing,
)
from tests.unit.test_records_avro import make_codec

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
SETTLE_S = 5.0
"""Bound on the real time a step may take (the restore runs on a worker thread)."""


class Shell:
    """One deliverer over fakes, partition 0 of `deliveries` assigned and restored."""

    def __init__(self, tmp_path: Path, **tuned: object) -> None:
        self.settings = Settings(data_dir=tmp_path).with_changes(
            retry_delays_s=(10.0, 10.0), delivery_timeout_s=1.0, **tuned
        )
        self.deliveries = self.settings.topic("deliveries")
        self.backlog = self.settings.topic("deliverer-backlog")
        self.clock = ManualClock(T0)
        self.codec = make_codec()
        self.box = SecretBox(os.urandom(32))
        commits = CommitReports()
        counts = {self.deliveries: 1, self.backlog: 1}
        self.consumer = FakeConsumer(on_commit=commits.report, partitions=counts)
        self.producer = FakeProducer()
        self.sender = FakeSender(self.clock)
        self.subscriptions = FakeSubscriptions()
        self.registry = CollectorRegistry()
        self.keys = SigningKeys(self.box)
        self.loop = DeliveryLoop(
            self.settings,
            DelivererMetrics(self.registry),
            Ports(
                codec=self.codec,
                subscriptions=self.subscriptions,
                subscription_log=self.subscriptions,
                consumer=self.consumer,
                tier_consumer=FakeConsumer(on_commit=commits.report, partitions={}),
                producer=self.producer,
                commits=commits,
                sender=self.sender,
                restore=restore_nothing,
                clock=self.clock,
                store_path=tmp_path / "backlog.sqlite",
            ),
            keys=self.keys,
            ready=threading.Event(),
        )

    async def start(self) -> None:
        await self.loop.start()
        self.consumer.assign(self.deliveries, 0)
        await self.until(lambda: (self.deliveries, 0) not in self.consumer.paused)

    def subscribe(self, name: str, *, ordered: bool = False, tenant: str = "acme") -> Subscription:
        sub_id = f"{name}-{uuid.uuid4().hex[:6]}"
        sealed = self.box.seal(generate_secret(), subscription_id=sub_id)
        sub = dataclasses.replace(
            subscription(sub_id, "*"),
            url=f"https://{name}.example/hook",
            tenant=tenant,
            ordered=ordered,
            secrets=(StoredSecret(sealed, None),),
        )
        self.subscriptions.known[sub.id] = sub
        return sub

    def command(self, sub: Subscription, *, offset: int | None = None) -> tuple[int, str]:
        """Append a command for `sub` to `deliveries`; its offset and event id."""
        event_id = str(uuid.uuid4())
        command = DeliveryCommand(
            delivery_id=delivery_id(event_id, sub.id),
            event_id=event_id,
            event_type="task.created",
            tenant=sub.tenant,
            subscription_id=sub.id,
            occurred_at=self.clock.now(),
            payload=b'{"type":"task.created"}',
            attempt=0,
            created_at=self.clock.now(),
            not_before=None,
            origin="route",
            job_id=None,
            last_error=None,
        )
        at = self.consumer.add(
            self.deliveries,
            0,
            key=sub.id.encode(),
            value=self.codec.encode_delivery_command(command),
            offset=offset,
            timestamp_ms=int(self.clock.now().timestamp() * 1000),
        )
        return at, event_id

    async def settle(self, turns: int = 30) -> None:
        """Turn the loop and let its tasks run: everything that can happen now happens."""
        for _ in range(turns):
            self.loop.turn()
            await asyncio.sleep(0)

    async def until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SETTLE_S
        while not condition():
            assert time.monotonic() < deadline, "condition not met"
            self.loop.turn()
            await asyncio.sleep(0.001)

    async def commit(self) -> None:
        """Let a commit interval pass and turn twice: commit, then its report."""
        self.clock.advance(1.0)
        await self.settle(2)

    def committed(self) -> int | None:
        return self.consumer.committed.get((self.deliveries, 0))

    def backlog_keys(self, *, tombstones: bool = False) -> list[str | bytes | None]:
        return [
            record.key
            for record in self.producer.to(self.backlog)
            if (record.value is None) == tombstones
        ]

    def webhook_ids(self, sub: Subscription) -> list[str]:
        return [sent.headers["webhook-id"] for sent in self.sender.to(sub.url)]

    def hop(self, name: str) -> tuple[float, float]:
        """The `hookline_hop_seconds` count and sum of one hop."""
        labels = {"hop": name}
        count = self.registry.get_sample_value("hookline_hop_seconds_count", labels)
        total = self.registry.get_sample_value("hookline_hop_seconds_sum", labels)
        return count or 0.0, total or 0.0

    def tenant_attempts(self, tenant: str, outcome: str) -> float:
        labels = {"tenant": tenant, "outcome": outcome}
        value = self.registry.get_sample_value("hookline_deliverer_tenant_attempts_total", labels)
        return value or 0.0

    def backlogged(self, why: str) -> float:
        value = self.registry.get_sample_value("hookline_deliverer_backlogged_total", {"why": why})
        return value or 0.0


@asynccontextmanager
async def running(tmp_path: Path, **tuned: object) -> AsyncIterator[Shell]:
    shell = Shell(tmp_path, **tuned)
    await shell.start()
    try:
        yield shell
    finally:
        await shell.loop.close()


async def test_a_busy_lane_spills_into_its_backlog_and_holds_no_one_else(tmp_path: Path) -> None:
    # one request at a time, 4 commands in memory per lane (max(4 x 1, 20 // 10))
    async with running(tmp_path, lane_concurrency=1, max_in_flight=20) as shell:
        slow, fast = shell.subscribe("slow"), shell.subscribe("fast")
        shell.sender.hold(slow.url)
        slow_ids = [shell.command(slow)[1] for _ in range(6)]
        shell.command(fast)
        await shell.settle()
        assert len(shell.sender.to(slow.url)) == 1  # one running, three queued in its lane
        assert shell.backlog_keys() == ["4", "5"]  # the rest waits in the backlog
        assert len(shell.sender.to(fast.url)) == 1  # the partition moved on
        assert shell.backlogged("busy") == 2
        shell.sender.release(slow.url)
        await shell.until(lambda: len(shell.sender.to(slow.url)) == 6)
        assert shell.webhook_ids(slow) == slow_ids
        await shell.until(lambda: shell.backlog_keys(tombstones=True) == ["4", "5"])
        await shell.commit()
        assert shell.committed() == 7


async def test_an_ordered_retry_stays_the_head_and_blocks_only_its_subscription(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as shell:
        ordered, other = shell.subscribe("ordered", ordered=True), shell.subscribe("other")
        shell.sender.answer(ordered.url, Response(500))
        _, first = shell.command(ordered)
        _, second = shell.command(ordered)
        await shell.settle()
        assert shell.webhook_ids(ordered) == [first]  # failed: a retry due in ~10 s
        shell.clock.advance(5.0)
        shell.command(other)
        await shell.settle()
        assert shell.webhook_ids(ordered) == [first]  # the second waits behind the retry
        assert len(shell.sender.to(other.url)) == 1  # nobody else does
        shell.clock.advance(60.0)
        await shell.until(lambda: len(shell.sender.to(ordered.url)) == 3)
        assert shell.webhook_ids(ordered) == [first, first, second]
        await shell.commit()
        assert shell.committed() == 3


async def test_retry_after_holds_the_lane_and_its_new_commands_wait_in_the_backlog(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as shell:
        sub = shell.subscribe("busy")
        shell.sender.answer(sub.url, Response(429, "30"))
        _, first = shell.command(sub)
        await shell.settle()
        _, second = shell.command(sub)
        await shell.settle()
        assert shell.webhook_ids(sub) == [first]
        assert shell.backlogged("held") == 1
        shell.clock.advance(20.0)
        await shell.settle()
        assert shell.webhook_ids(sub) == [first]  # the endpoint asked for 30 s
        shell.clock.advance(60.0)
        await shell.until(lambda: len(shell.sender.to(sub.url)) == 3)
        assert sorted(shell.webhook_ids(sub)) == sorted([first, first, second])


async def test_the_in_flight_budget_pauses_fetching_until_outputs_are_acknowledged(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, max_in_flight=4) as shell:
        sub = shell.subscribe("hook")
        shell.producer.hold = True  # attempts are made, their records not yet acknowledged
        for _ in range(4):
            shell.command(sub)
        await shell.settle()
        assert shell.loop.dispatcher.in_flight == 4
        assert (shell.deliveries, 0) in shell.consumer.paused
        shell.command(sub)
        await shell.settle()
        assert len(shell.sender.to(sub.url)) == 4  # the fifth is not fetched
        shell.producer.hold = False
        await shell.until(lambda: len(shell.sender.to(sub.url)) == 5)
        assert (shell.deliveries, 0) not in shell.consumer.paused


async def test_commits_stop_at_the_first_unfinished_offset_and_tolerate_gaps(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as shell:
        slow, fast = shell.subscribe("slow"), shell.subscribe("fast")
        shell.sender.hold(slow.url)
        shell.command(slow, offset=0)
        shell.command(fast, offset=3)  # gaps: compaction, transaction markers
        shell.command(fast, offset=7)
        await shell.settle()
        assert len(shell.sender.to(fast.url)) == 2
        await shell.commit()
        assert shell.committed() == 0  # 3 and 7 are done, 0 is not
        shell.sender.release(slow.url)
        await shell.settle()
        await shell.commit()
        assert shell.committed() == 8


async def test_stopping_hands_queued_commands_to_the_backlog_and_commits_them(
    tmp_path: Path,
) -> None:
    shell = Shell(tmp_path, lane_concurrency=1)
    await shell.start()
    sub = shell.subscribe("hook")
    shell.sender.hold(sub.url)
    for _ in range(3):
        shell.command(sub)
    await shell.settle()
    stopping = asyncio.create_task(shell.loop.stop())
    await asyncio.sleep(0)
    assert shell.backlog_keys() == ["1", "2"]  # handed over, not attempted
    assert shell.backlogged("handover") == 2
    shell.sender.release(sub.url)  # the running attempt ends
    await stopping
    await shell.loop.close()
    assert len(shell.sender.to(sub.url)) == 1
    assert shell.committed() == 3
    assert shell.consumer.closed
    assert shell.sender.closed


async def test_a_failed_commit_is_sent_again_though_the_partition_is_quiet(
    tmp_path: Path,
) -> None:
    # regression: the position was marked committed before the asynchronous commit's result
    # was known, so a refused commit was never retried until the partition moved again
    async with running(tmp_path) as shell:
        sub = shell.subscribe("hook")
        shell.command(sub)
        await shell.settle()
        shell.consumer.refuse_commits = KafkaError(KafkaError.REQUEST_TIMED_OUT)
        await shell.commit()
        assert shell.committed() is None
        shell.consumer.refuse_commits = None
        await shell.commit()
        assert shell.committed() == 1
        calls = len(shell.consumer.commit_calls)
        await shell.commit()
        assert len(shell.consumer.commit_calls) == calls  # confirmed: not sent again


async def test_a_fatal_commit_error_stops_the_deliverer(tmp_path: Path) -> None:
    async with running(tmp_path) as shell:
        sub = shell.subscribe("hook")
        shell.command(sub)
        await shell.settle()
        shell.consumer.refuse_commits = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
        await shell.commit()  # commit, then the report of its fatal error
        with pytest.raises(KafkaException, match="fenced"):
            shell.loop.turn()


async def test_a_deleted_subscriptions_keys_are_forgotten(tmp_path: Path) -> None:
    async with running(tmp_path) as shell:
        sub = shell.subscribe("gone")
        shell.command(sub)
        await shell.settle()
        assert len(shell.keys) == 1
        del shell.subscriptions.known[sub.id]
        shell.command(sub)
        await shell.settle()
        assert len(shell.keys) == 0
        assert len(shell.sender.to(sub.url)) == 1  # the second was settled, never sent


def test_signing_keys_keep_only_the_most_recently_used_subscriptions() -> None:
    box = SecretBox(os.urandom(32))
    keys = SigningKeys(box, max_cached=2)
    subs = []
    for name in ("a", "b", "c"):
        sealed = box.seal(generate_secret(), subscription_id=name)
        subs.append(dataclasses.replace(subscription(name), secrets=(StoredSecret(sealed, None),)))
    a, b, c = subs
    keys.valid(a, T0)
    keys.valid(b, T0)
    keys.valid(a, T0)  # a used last: b is the one to go
    keys.valid(c, T0)
    assert len(keys) == 2
    keys.forget(a.id)
    keys.forget(c.id)
    assert len(keys) == 0  # b was evicted, not a


async def test_a_backlog_entry_is_deleted_only_once_its_attempt_is_on_the_log(
    tmp_path: Path,
) -> None:
    """Regression (chaos, kill -9 of a deliverer holding a backlog): the attempt record and
    the entry's tombstone were written together, so a crash could keep the tombstone and lose
    the record: a delivery its receiver had, which the history never heard of and which was
    never sent again. The tombstone now waits for the record's acknowledgement."""
    async with running(tmp_path, lane_concurrency=1, max_in_flight=20) as shell:
        sub = shell.subscribe("hook")
        shell.sender.hold(sub.url)
        for _ in range(6):
            shell.command(sub)
        await shell.settle()
        assert shell.backlog_keys() == ["4", "5"]
        shell.producer.hold = True  # from here, nothing written is acknowledged
        shell.sender.release(sub.url)
        attempts = shell.settings.topic("attempts")
        await shell.until(lambda: len(shell.producer.to(attempts)) == 6)
        assert shell.backlog_keys(tombstones=True) == []  # their records are not on the log yet
        shell.producer.hold = False
        await shell.until(lambda: shell.backlog_keys(tombstones=True) == ["4", "5"])


async def test_the_hops_of_a_first_attempt_are_measured_once_each(tmp_path: Path) -> None:
    async with running(tmp_path) as shell:
        sub = shell.subscribe("hops")
        shell.command(sub)  # the record's timestamp is the clock's now
        shell.clock.advance(0.03)  # read 30 ms after the router wrote it
        await shell.until(lambda: len(shell.sender.to(sub.url)) == 1)
        await shell.until(lambda: shell.hop("response_to_record_ack")[0] == 1)
        count, total = shell.hop("command_to_deliverer")
        assert count == 1
        assert total == pytest.approx(0.03)
        for hop in ("consume_to_request", "request_to_response"):
            assert shell.hop(hop)[0] == 1


async def test_attempt_records_are_counted_by_tenant_and_outcome(tmp_path: Path) -> None:
    async with running(tmp_path) as shell:
        acme, globex = shell.subscribe("acme"), shell.subscribe("globex", tenant="globex")
        shell.sender.answer(globex.url, Response(500))
        for sub in (acme, acme, globex, globex):
            shell.command(sub)
        await shell.until(lambda: len(shell.sender.sent) == 4)
        await shell.settle()
        counted = {
            (tenant, outcome): shell.tenant_attempts(tenant, outcome)
            for tenant in ("acme", "globex")
            for outcome in ("delivered", "retrying")
        }
        assert counted == {
            ("acme", "delivered"): 2,
            ("acme", "retrying"): 0,
            ("globex", "delivered"): 1,
            ("globex", "retrying"): 1,
        }
