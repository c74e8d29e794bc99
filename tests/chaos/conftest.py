"""The chaos suite's own Kafka broker and PostgreSQL server (never the shared test stack,
since the suite kills, pauses and restarts them), and the summary of what each run saw.

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
from hookline.app.localstack.kafka import start_kafka, stop_kafka
from hookline.app.localstack.postgres import start_postgres, stop_postgres
from hookline.app.localstack.process import read_state
from hookline.runtime.settings import Secret, Settings
from tests.chaos.reconcile import Report

REPO = Path(__file__).resolve().parents[2]
REPORTS: list[Report] = []


class ChaosStack:
    """A broker and a PostgreSQL server of the suite's own, with the faults to inject."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.kafka_data = folder / "kafka"
        self.postgres_data = folder / "postgres"
        self.kafka_data.mkdir(parents=True, exist_ok=True)
        self.postgres_data.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Settings.load().cache_dir  # Kafka's jars, kept between runs
        self.bootstrap = start_kafka(self.kafka_data, cache_dir=self.cache_dir).bootstrap
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
            replication_factor=1,
            min_insync_replicas=1,
            allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
            data_dir=self.folder,
            delivery_timeout_s=5.0,
            retry_delays_s=(0.5, 1.0, 2.0, 4.0, 8.0),
        )

    def broker_pid(self) -> int:
        state = read_state(self.kafka_data / "state.json")
        assert state is not None, "the chaos broker has no state file"
        return int(state["pid"])

    def kill_broker(self) -> None:
        """kill -9 the broker's JVM and reap it."""
        pid = self.broker_pid()
        os.kill(pid, signal.SIGKILL)
        # the local stack keeps its children referenced so they are reaped; reap this one now
        child: subprocess.Popen[bytes] | None = local_kafka._CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(30)

    def start_broker(self) -> None:
        """Start the broker again on the same folder (and the same ports, free again)."""
        bootstrap, was = (
            start_kafka(self.kafka_data, cache_dir=self.cache_dir).bootstrap,
            self.bootstrap,
        )
        if bootstrap != was:
            self.bootstrap = bootstrap  # so the next scenarios find it
            raise AssertionError(f"the broker came back on {bootstrap}, not {was}")

    def pause_broker(self) -> None:
        os.kill(self.broker_pid(), signal.SIGSTOP)

    def resume_broker(self) -> None:
        os.kill(self.broker_pid(), signal.SIGCONT)

    def stop_postgres(self) -> None:
        assert stop_postgres(self.postgres_data), "the chaos PostgreSQL was not running"

    def start_postgres(self) -> None:
        url = start_postgres(self.postgres_data, passwords=self.passwords).url
        was = self.database_url
        if url != was:
            self.database_url = url  # so the next scenarios find it
            raise AssertionError(f"PostgreSQL came back on {url}, not {was}")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.broker_pid(), signal.SIGCONT)  # a failed test may leave it paused
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
