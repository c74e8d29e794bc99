"""The local stack: Kafka and PostgreSQL together, for tests, `hookline up` and benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hookline.app.credentials import local_database_passwords
from hookline.app.localstack.kafka import start_kafka, stop_kafka
from hookline.app.localstack.postgres import start_postgres, stop_postgres
from hookline.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class LocalStack:
    kafka_bootstrap: str
    database_url: str
    reused: bool
    start_s: float


def start_stack(data_dir: Path, *, cache_dir: Path) -> LocalStack:
    """Start (or find running) Kafka and PostgreSQL under `data_dir`, Kafka's jars in
    `cache_dir` (the `cache_dir` setting), PostgreSQL's passwords with the local credentials."""
    started = time.monotonic()
    kafka = start_kafka(data_dir / "kafka", cache_dir=cache_dir)
    passwords = local_database_passwords(data_dir)
    postgres = start_postgres(data_dir / "postgres", passwords=passwords)
    return LocalStack(
        kafka.bootstrap,
        postgres.url,
        reused=kafka.reused and postgres.reused,
        start_s=time.monotonic() - started,
    )


def stop_stack(data_dir: Path) -> None:
    stop_kafka(data_dir / "kafka")
    stop_postgres(data_dir / "postgres")


def local_settings(settings: Settings, stack: LocalStack) -> Settings:
    """Settings pointed at the local single node: replication 1, few partitions."""
    from hookline.runtime.settings import Secret

    return settings.with_changes(
        kafka_bootstrap=stack.kafka_bootstrap,
        database_url=Secret(stack.database_url),
        replication_factor=1,
        min_insync_replicas=1,
        partitions=min(settings.partitions, 3),
    )
