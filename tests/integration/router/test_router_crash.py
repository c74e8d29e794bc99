"""`kill -9` of the router process in the middle of 10,000 events, then a restart: a
read_committed reader finds every expected command exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.ids import delivery_id
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from tests.factories import subscription

from .conftest import CommittedReader, produce_events, task_event

pytestmark = pytest.mark.integration

EVENTS = 10_000


def _router_argv() -> list[str]:
    script = Path(sys.executable).parent / "hookline"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "hookline.app.cli"]
    # small batches: many transactions, so the kill lands between two of them or inside one
    return [*prefix, "router", "--instance-id", "crash-test", "--batch-max-events", "200"]


def _router_env(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    return {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKLINE_TOPIC_PREFIX": settings.topic_prefix,
        "HOOKLINE_PARTITIONS": str(settings.partitions),
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        "HOOKLINE_METRICS_PORT": "0",  # any free port: processes of a test may overlap
    }


def test_kill_9_mid_stream_then_restart_gives_every_command_exactly_once(
    settings: Settings,
    runtime: CodecRuntime,
    subscriptions: SubscriptionLog,
    commands_reader: CommittedReader,
    tmp_path: Path,
) -> None:
    subscriptions.put(subscription("s-noun", "task.*"))
    subscriptions.put(subscription("s-p1", "task.created", filter={"project_id": "p-1"}))
    subscriptions.put(subscription("s-globex", "*", tenant="globex"))
    types = ("task.created", "task.assigned")
    events = [
        task_event(n, event_type=types[n % 2], project=f"p-{n // 2 % 2}") for n in range(EVENTS)
    ]
    expected = {delivery_id(e.id, "s-noun") for e in events} | {
        delivery_id(e.id, "s-p1")
        for e in events
        if e.type == "task.created" and e.data["project_id"] == "p-1"
    }
    produce_events(settings, runtime, events)
    argv, env = _router_argv(), _router_env(settings)

    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        try:
            commands_reader.wait_for(
                lambda: len(commands_reader.messages) > 0, "a first command", timeout_s=120
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
    seen_at_kill = len(commands_reader.messages)
    assert first.returncode == -signal.SIGKILL
    assert 0 < seen_at_kill < len(expected), "the kill did not land mid-stream"

    with (tmp_path / "second.log").open("wb") as log:
        second = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        try:
            commands_reader.wait_for(
                lambda: len(commands_reader.messages) >= len(expected),
                f"{len(expected)} commands",
                timeout_s=120,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    commands_reader.drain()

    counts = Counter(c.delivery_id for c in commands_reader.commands(runtime))
    duplicates = {d: n for d, n in counts.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} commands seen more than once"
    assert set(counts) == expected
