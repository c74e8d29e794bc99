"""`kill -9` of a deliverer process during 5,000 deliveries, then a restart: every command is
delivered at least once (duplicates counted and reported); SIGTERM then drains, commits and
exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from hookline.app.receiver import Receiver
from hookline.runtime.kafka import consumer_config
from hookline.runtime.settings import Settings
from tests.integration.deliverer.conftest import Kit
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration

TOTAL = 5000
SUBSCRIPTIONS = 20
REPO = Path(__file__).resolve().parents[3]


def _environment(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    assert settings.secret_key is not None
    return {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKLINE_SECRET_KEY": settings.secret_key.value,
        "HOOKLINE_TOPIC_PREFIX": settings.topic_prefix,
        "HOOKLINE_PARTITIONS": str(settings.partitions),
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "HOOKLINE_DELIVERY_TIMEOUT_S": "5",
        "HOOKLINE_RETRY_DELAYS_S": "0.5,0.5",
        "HOOKLINE_METRICS_PORT": "0",  # any free port: processes of a test may overlap
    }


async def _start(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hookline.app.cli",
            "deliverer",
            cwd=REPO,
            env=_environment(settings),
            stdout=sink,
            stderr=sink,
        )


def _uncommitted(settings: Settings) -> int:
    """Commands on `deliveries` past the deliverer group's committed offsets."""
    topic = settings.topic("deliveries")
    consumer = Consumer(
        consumer_config(settings, group_id=settings.group("deliverer"), client_id="test-committed")
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        committed = consumer.committed(partitions, timeout=10)
        behind = 0
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            behind += high - max(tp.offset, 0)
        return behind
    finally:
        consumer.close()


async def test_kill_9_then_restart_delivers_everything_at_least_once(kit: Kit) -> None:
    settings = kit.settings
    async with Receiver() as receiver:
        subs = [kit.subscription(receiver.url(f"/s{n}")) for n in range(SUBSCRIPTIONS)]
        commands = [kit.command(subs[n % SUBSCRIPTIONS]) for n in range(TOTAL)]
        await asyncio.to_thread(kit.send, commands)
        wanted = {c.event_id for c in commands}
        with tempfile.TemporaryDirectory() as folder:
            log = Path(folder) / "deliverer.log"
            first = await _start(settings, log)
            try:
                await eventually_async(
                    lambda: receiver.count >= TOTAL // 3 or first.returncode is not None,
                    "receiver.count >= TOTAL // 3 or first.returncode is not None",
                    timeout_s=60,
                )
                assert first.returncode is None, log.read_text(errors="replace")[-4000:]
            finally:
                first.kill()  # SIGKILL: no drain, no commit
                await first.wait()
            at_kill = receiver.count
            second = await _start(settings, log)
            try:
                await eventually_async(
                    lambda: set(receiver.ids()) >= wanted or second.returncode is not None,
                    "set(receiver.ids()) >= wanted or second.returncode is not None",
                    timeout_s=90,
                )
                assert second.returncode is None, log.read_text(errors="replace")[-4000:]
                second.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(second.wait(), timeout=60)
            finally:
                if second.returncode is None:
                    second.kill()
                    await second.wait()
            output = log.read_text(errors="replace")
        assert code == 0, output[-4000:]
    counts = Counter(receiver.ids())
    duplicates = sum(n - 1 for n in counts.values())
    print(  # the issue asks the test to report them
        f"kill -9 after {at_kill} requests; {len(counts)} of {TOTAL} delivered; "
        f"{duplicates} duplicates"
    )
    assert set(counts) == wanted
    assert await asyncio.to_thread(_uncommitted, settings) == 0, "SIGTERM commits everything"
