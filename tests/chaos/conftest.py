"""The chaos suite's own Kafka (one broker, and a cluster of three for the cluster scenarios)
and PostgreSQL server (never the shared test stack, since the suite kills, pauses and
restarts them), and the summary of what each run saw.

Run with `make chaos` (`pytest tests/chaos -m chaos`); `HOOKLINE_CHAOS_SEED` replays a run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.app.credentials import local_database_passwords
from hookline.app.localstack import kafka as local_kafka
from hookline.app.localstack.kafka import (
    active_controller,
    durability,
    node_folders,
    start_kafka,
    stop_kafka,
)
from hookline.app.localstack.postgres import start_postgres, stop_postgres
from hookline.app.localstack.process import read_state
from hookline.runtime.settings import Secret, Settings
from tests.chaos.reconcile import Report

REPO = Path(__file__).resolve().parents[2]
REPORTS: list[Report] = []


class ChaosStack:
    """Kafka (`brokers` nodes) and a PostgreSQL server of the suite's own, with the faults to
    inject; a fault on "the broker" hits node 1, the only one of a single broker."""

    def __init__(self, folder: Path, *, brokers: int = 1) -> None:
        self.folder = folder
        self.brokers = brokers
        self.kafka_data = folder / "kafka"
        self.postgres_data = folder / "postgres"
        self.kafka_data.mkdir(parents=True, exist_ok=True)
        self.postgres_data.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Settings.load().cache_dir  # Kafka's jars, kept between runs
        self.bootstrap = start_kafka(
            self.kafka_data, cache_dir=self.cache_dir, brokers=brokers
        ).bootstrap
        self.passwords = local_database_passwords(folder)
        self.database_url = start_postgres(self.postgres_data, passwords=self.passwords).url
        self.secret_key = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="

    def settings(self) -> Settings:
        """Settings with a fresh topic prefix (and so a fresh history schema)."""
        return Settings(
            kafka_bootstrap=self.bootstrap,
            database_url=Secret(self.database_url),
            admin_token=Secret("chaos-admin-token-" + uuid.uuid4().hex),
            secret_key=Secret(self.secret_key),
            topic_prefix=f"chaos{uuid.uuid4().hex[:10]}",
            partitions=3,
            replication_factor=durability(self.brokers).replication_factor,
            min_insync_replicas=durability(self.brokers).min_insync_replicas,
            allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
            data_dir=self.folder,
            delivery_timeout_s=5.0,
            retry_delays_s=(0.5, 1.0, 2.0, 4.0, 8.0),
        )

    def broker_pid(self, node: int = 1) -> int:
        folder = node_folders(self.kafka_data, self.brokers)[node - 1]
        state = read_state(folder / "state.json")
        assert state is not None, f"the chaos broker {node} has no state file"
        return int(state["pid"])

    def kill_broker(self, node: int = 1) -> None:
        """kill -9 a broker's JVM and reap it."""
        pid = self.broker_pid(node)
        os.kill(pid, signal.SIGKILL)
        self._reap(pid)

    def stop_broker(self, node: int) -> None:
        """SIGTERM (a controlled shutdown) and wait until the JVM has exited."""
        pid = self.broker_pid(node)
        os.kill(pid, signal.SIGTERM)
        self._reap(pid, timeout_s=60)

    @staticmethod
    def _reap(pid: int, timeout_s: float = 30) -> None:
        # the local stack keeps its children referenced so they are reaped; reap this one now
        child: subprocess.Popen[bytes] | None = local_kafka._CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout_s)

    def start_broker(self) -> None:
        """Start the stopped brokers again on the same folders (and the same ports, free
        again); the running ones are left as they are."""
        bootstrap, was = (
            start_kafka(self.kafka_data, cache_dir=self.cache_dir).bootstrap,
            self.bootstrap,
        )
        if bootstrap != was:
            self.bootstrap = bootstrap  # so the next scenarios find it
            raise AssertionError(f"the broker came back on {bootstrap}, not {was}")

    def pause_broker(self, node: int = 1) -> None:
        os.kill(self.broker_pid(node), signal.SIGSTOP)

    def resume_broker(self, node: int = 1) -> None:
        os.kill(self.broker_pid(node), signal.SIGCONT)

    def active_controller(self) -> int:
        controller = active_controller(self.kafka_data)
        assert controller is not None, "no node of the chaos cluster names a controller"
        return controller

    def stop_postgres(self) -> None:
        assert stop_postgres(self.postgres_data), "the chaos PostgreSQL was not running"

    def start_postgres(self) -> None:
        url = start_postgres(self.postgres_data, passwords=self.passwords).url
        was = self.database_url
        if url != was:
            self.database_url = url  # so the next scenarios find it
            raise AssertionError(f"PostgreSQL came back on {url}, not {was}")

    def close(self) -> None:
        for node in range(1, self.brokers + 1):
            with contextlib.suppress(ProcessLookupError, AssertionError):
                os.kill(self.broker_pid(node), signal.SIGCONT)  # a failed test may leave it paused
        stop_kafka(self.kafka_data)
        stop_postgres(self.postgres_data)


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[ChaosStack]:
    folder = REPO / ".hookline" / "chaos" / f"run-{os.getpid()}"
    stack = ChaosStack(folder)
    try:
        yield stack
    finally:
        stack.close()
        if not os.environ.get("HOOKLINE_KEEP_CHAOS"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_stack() -> Iterator[ChaosStack]:
    """Three brokers in one KRaft cluster (every node a voter), topics with 3 replicas."""
    folder = REPO / ".hookline" / "chaos" / f"cluster-{os.getpid()}"
    stack = ChaosStack(folder, brokers=3)
    try:
        yield stack
    finally:
        stack.close()
        if not os.environ.get("HOOKLINE_KEEP_CHAOS"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    """The run's seed: `HOOKLINE_CHAOS_SEED` when set, else a fresh one (printed)."""
    text = os.environ.get("HOOKLINE_CHAOS_SEED")
    return int(text) if text else random.SystemRandom().randrange(2**31)


@pytest.fixture(scope="session")
def chaos_reports() -> list[Report]:
    return REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("chaos: deliveries reconciled")
    for report in REPORTS:
        terminalreporter.write_line(report.line())
    total = sum(r.duplicates for r in REPORTS)
    lost = sum(r.lost for r in REPORTS)
    terminalreporter.write_line(f"total: lost={lost} duplicates={total}")
