"""Helpers of the end-to-end tests: the `hookline` command, service processes started with it,
and their Prometheus metrics read over HTTP."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from hookline.app.localstack.process import free_port
from hookline.app.receiver import Receiver
from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Settings
from tests.conftest import TopicJanitor

HOOKLINE: Final = str(Path(sys.executable).parent / "hookline")


class ServiceProcess:
    """`hookline <command> --metrics-port N …` in a subprocess, its output in `log`."""

    def __init__(self, command: str, env: dict[str, str], log: Path, *extra: str) -> None:
        self.name = log.stem
        self.log = log
        self.metrics_port = free_port()
        self._sink: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [HOOKLINE, command, "--metrics-port", str(self.metrics_port), *extra],
            env=env,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
        )
        self.last: dict[str, float] = {}
        """The samples of the last successful scrape (kept after the process exits)."""

    def scrape(self) -> dict[str, float]:
        """Samples by `name{label="value",…}`; the previous scrape when the process is gone."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return self.last
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        self.last = samples
        return samples

    def metric(self, name: str) -> float:
        return self.scrape().get(name, 0.0)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM: drain, commit and exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def exit_code(self, timeout_s: float = 60.0) -> int:
        """Wait for the exit code (killing the process only past the deadline)."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._sink.close()


@contextmanager
def receiver_in_thread(receiver: Receiver) -> Iterator[Receiver]:
    """Serve `receiver` from an event loop of its own thread, so the test may block."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(receiver.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="test-receiver", daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the receiver did not start"
        yield receiver
    finally:
        if started.is_set():
            asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def group_assignment(settings: Settings, group: str) -> dict[str, int]:
    """Members of a consumer group (by client id) and how many partitions each holds."""
    admin = AdminClient(admin_config(settings))
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
    return {
        member.client_id: len(member.assignment.topic_partitions) for member in description.members
    }


@pytest.fixture
def fresh_prefix(topic_janitor: TopicJanitor) -> Iterator[str]:
    """A topic prefix of the test's own; whatever topics a command made under it are deleted
    after the test."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    topic_janitor.delete(lambda name: name.startswith(f"{prefix}."))
