"""The durable backlog on the real broker: it survives `kill -9` (the next owner restores it
from the changelog), a deleted subscription's backlog is settled at once, and a backlog of a
million commands keeps the deliverer's memory bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from hookline.app.receiver import Answer, Hang, Receiver
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from tests.e2e.conftest import ServiceProcess
from tests.integration.deliverer.conftest import Kit, Outputs, running
from tests.integration.deliverer.test_crash import _environment, _uncommitted
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


def _alive(service: ServiceProcess) -> bool:
    return service.process.poll() is None


def _rss_mib(service: ServiceProcess) -> float:
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def test_a_backlog_moves_to_the_next_owner_after_kill_9(kit: Kit) -> None:
    total = 3000
    settings = kit.settings
    async with Receiver(behaviours={"/s": Hang()}) as receiver:
        sub = kit.subscription(receiver.url("/s"))
        commands = [kit.command(sub) for _ in range(total)]
        await asyncio.to_thread(kit.send, commands)
        with tempfile.TemporaryDirectory() as folder:
            env = _environment(settings)
            first = ServiceProcess("deliverer", env, Path(folder) / "first.log")
            try:
                # every command is in the backlog once nothing is left uncommitted
                await eventually_async(
                    lambda: not _alive(first) or _uncommitted(settings) == 0,
                    "not _alive(first) or _uncommitted(settings) == 0",
                    timeout_s=60,
                    interval_s=0.5,
                )
                assert _alive(first), first.output()
                backlogged = first.metric("hookline_deliverer_backlog_depth")
            finally:
                first.close()  # SIGKILL: the local store is gone with it
            before = len(receiver.ids())
            assert before < total, "the endpoint hung: the backlog holds the rest"
            receiver.behaviours["/s"] = Answer()
            second = ServiceProcess("deliverer", env, Path(folder) / "second.log")
            try:
                wanted = {c.event_id for c in commands}
                await eventually_async(
                    lambda: set(receiver.ids()) >= wanted or not _alive(second),
                    "set(receiver.ids()) >= wanted or not _alive(second)",
                    timeout_s=90,
                )
                assert _alive(second), second.output()
                second.stop()  # SIGTERM: drain, commit, exit 0
                assert await asyncio.to_thread(second.exit_code) == 0, second.output()
            finally:
                second.close()
    counts = Counter(receiver.ids())
    print(
        f"backlog of {backlogged:.0f} at kill -9 ({before} requests had started); "
        f"{len(counts)} of {total} delivered, {sum(n - 1 for n in counts.values())} duplicates"
    )
    assert backlogged > 0
    assert set(counts) == wanted


async def test_a_deleted_subscriptions_backlog_is_settled_at_once(
    kit: Kit, outputs: Outputs
) -> None:
    settings = kit.settings.with_changes(retry_delays_s=(300.0, 300.0))
    kit.settings = settings
    async with Receiver(default=Answer(status=500)) as receiver:
        sub = kit.subscription(receiver.url("/s"))
        commands = [kit.command(sub) for _ in range(50)]
        await asyncio.to_thread(kit.send, commands)
        async with running(settings):
            # every command failed once and waits 300 s in the backlog
            await eventually_async(
                lambda: sum(a.outcome == "retrying" for a in outputs.attempts()) >= 50,
                'sum(a.outcome == "retrying" for a in outputs.attempts()) >= 50',
                timeout_s=30,
            )
            kit.log.delete(sub.id)
            await eventually_async(
                lambda: sum(a.outcome == "failed" for a in outputs.attempts()) >= 50,
                'sum(a.outcome == "failed" for a in outputs.attempts()) >= 50',
                timeout_s=15,
            )
    failed = [a for a in outputs.attempts() if a.outcome == "failed"]
    assert {a.delivery_id for a in failed} == {c.delivery_id for c in commands}
    assert {a.error for a in failed} == {"subscription deleted"}
    assert receiver.count == 50, "nothing was sent after the delete"


async def test_a_million_command_backlog_keeps_memory_bounded(kit: Kit) -> None:
    total = 1_000_000
    settings = kit.settings
    async with Receiver(behaviours={"/s": Hang()}, record=False) as receiver:
        sub = kit.subscription(receiver.url("/s"))
        # one command's bytes, a million times: each offset is its own backlog entry
        value = kit.codec.encode_delivery_command(kit.command(sub))
        await asyncio.to_thread(_produce_many, settings, sub.id, value, total)
        with tempfile.TemporaryDirectory() as folder:
            process = ServiceProcess(
                "deliverer", _environment(settings), Path(folder) / "deliverer.log"
            )
            peak = 0.0
            try:

                def settled() -> bool:
                    nonlocal peak
                    peak = max(peak, _rss_mib(process)) if _alive(process) else peak
                    return not _alive(process) or _uncommitted(settings) == 0

                await eventually_async(
                    settled, "the backlog settled", timeout_s=600, interval_s=1.0
                )
                assert _alive(process), process.output()
                await eventually_async(
                    lambda: process.metric("hookline_deliverer_backlog_depth") > 0.99 * total,
                    'process.metric("hookline_deliverer_backlog_depth") > 0.99 * total',
                    timeout_s=30,
                )
                depth = process.metric("hookline_deliverer_backlog_depth")
                peak = max(peak, _rss_mib(process))
            finally:
                process.close()
    print(f"backlog of {depth:.0f} commands; deliverer RSS peak {peak:.0f} MiB")
    assert peak < 300


def _produce_many(settings: Settings, key: str, value: bytes, count: int) -> None:
    producer = Producer(producer_config(settings, client_id="test-million") | {"linger.ms": 50})
    topic = settings.topic("deliveries")
    acks = Acks(producer, timeout_s=120)
    for _ in range(count):
        acks.produce(topic, key=key, value=value)
    acks.wait()


async def test_a_retry_left_in_a_tier_by_an_older_version_is_delivered_when_due(
    kit: Kit,
) -> None:
    async with Receiver() as receiver:
        sub = kit.subscription(receiver.url("/s"))
        due = datetime.now(UTC) + timedelta(seconds=2)
        command = dataclasses.replace(kit.command(sub), attempt=1, not_before=due)
        producer = Producer(producer_config(kit.settings, client_id="test-old-tier"))
        producer.produce(
            kit.settings.topic("retry.5m"),
            key=sub.id,
            value=kit.codec.encode_delivery_command(command),
        )
        assert producer.flush(10) == 0
        async with running(kit.settings):
            await eventually_async(lambda: receiver.count >= 1, "receiver.count >= 1", timeout_s=30)
        [request] = receiver.received
    assert request.webhook_id == command.event_id
    assert request.received_at >= due.timestamp(), "not before it was due"
