"""The local stack: Kafka and PostgreSQL together, for tests, `hookline up` and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hookline.app.credentials import local_database_passwords, local_kafka_password
from hookline.app.localstack.kafka import kafka_pid, start_kafka, stop_kafka
from hookline.app.localstack.postgres import postgres_pid, start_postgres, stop_postgres
from hookline.app.localstack.secure import SecureAccess
from hookline.runtime.settings import Settings

PARTS: Final = frozenset({"kafka", "postgres"})


@dataclass(frozen=True, slots=True)
class LocalStack:
    kafka_bootstrap: str
    database_url: str
    reused: bool
    start_s: float
    secure: SecureAccess | None = None
    """Kafka's SASL_SSL listener (`secure=True`)."""


def start_stack(data_dir: Path, *, cache_dir: Path, secure: bool = False) -> LocalStack:
    """Start (or find running) Kafka and PostgreSQL under `data_dir`, Kafka's jars in
    `cache_dir` (the `cache_dir` setting), PostgreSQL's passwords with the local credentials;
    `secure` opens Kafka's SASL_SSL listener too, its SCRAM password a local credential."""
    started = time.monotonic()
    scram_password = local_kafka_password(data_dir) if secure else None
    kafka = start_kafka(data_dir / "kafka", cache_dir=cache_dir, scram_password=scram_password)
    passwords = local_database_passwords(data_dir)
    postgres = start_postgres(data_dir / "postgres", passwords=passwords)
    return LocalStack(
        kafka.bootstrap,
        postgres.url,
        reused=kafka.reused and postgres.reused,
        start_s=time.monotonic() - started,
        secure=kafka.secure,
    )


def stack_pids(data_dir: Path) -> dict[str, int | None]:
    """The pid of each part of the stack under `data_dir`; None for a part not running."""
    return {
        "kafka": kafka_pid(data_dir / "kafka"),
        "postgres": postgres_pid(data_dir / "postgres"),
    }


def running_parts(data_dir: Path) -> frozenset[str]:
    """The parts of the stack under `data_dir` whose server runs now."""
    return frozenset(part for part, pid in stack_pids(data_dir).items() if pid is not None)


def stop_stack(data_dir: Path, parts: Iterable[str] = PARTS) -> None:
    """Stop `parts` of the stack under `data_dir` (both by default); a part not running is
    left as it is."""
    wanted = set(parts)
    if "kafka" in wanted:
        stop_kafka(data_dir / "kafka")
    if "postgres" in wanted:
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
