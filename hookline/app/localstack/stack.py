"""The local stack: Kafka and PostgreSQL together, for tests, `hookline up` and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hookline.app.credentials import local_database_passwords, local_kafka_password
from hookline.app.localstack.kafka import (
    active_controller,
    durability,
    kafka_nodes,
    kafka_pids,
    start_kafka,
    stop_kafka,
)
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
    brokers: int = 1
    secure: SecureAccess | None = None
    """Kafka's SASL_SSL listeners (`secure=True`)."""


def start_stack(
    data_dir: Path, *, cache_dir: Path, brokers: int | None = None, secure: bool = False
) -> LocalStack:
    """Start (or find running) Kafka and PostgreSQL under `data_dir`, Kafka's jars in
    `cache_dir` (the `cache_dir` setting), PostgreSQL's passwords with the local credentials.
    `brokers`: Kafka's nodes (1 or 3); None takes what the folder was made with. `secure`
    opens Kafka's SASL_SSL listeners too, the SCRAM password a local credential."""
    started = time.monotonic()
    scram_password = local_kafka_password(data_dir) if secure else None
    kafka = start_kafka(
        data_dir / "kafka", cache_dir=cache_dir, brokers=brokers, scram_password=scram_password
    )
    passwords = local_database_passwords(data_dir)
    postgres = start_postgres(data_dir / "postgres", passwords=passwords)
    return LocalStack(
        kafka.bootstrap,
        postgres.url,
        reused=kafka.reused and postgres.reused,
        start_s=time.monotonic() - started,
        brokers=kafka.brokers,
        secure=kafka.secure,
    )


def stack_pids(data_dir: Path) -> dict[str, tuple[int, ...]]:
    """The pids of each part of the stack under `data_dir` (one per Kafka node); none for a
    part not running."""
    postgres = postgres_pid(data_dir / "postgres")
    return {
        "kafka": kafka_pids(data_dir / "kafka"),
        "postgres": () if postgres is None else (postgres,),
    }


def running_parts(data_dir: Path) -> frozenset[str]:
    """The parts of the stack under `data_dir` whose server runs now."""
    return frozenset(part for part, pids in stack_pids(data_dir).items() if pids)


def stack_status(data_dir: Path) -> list[str]:
    """One line per Kafka node (its pid and address, which is the active controller) and
    one for PostgreSQL."""
    kafka = data_dir / "kafka"
    nodes = kafka_nodes(kafka)
    controller = active_controller(kafka) if len(nodes) > 1 else None
    lines = [f"kafka     not started in {kafka}"] if not nodes else []
    for node in nodes:
        if node.pid is None:
            lines.append(f"kafka     node {node.node_id}  not running")
            continue
        role = "  active controller" if node.node_id == controller else ""
        lines.append(f"kafka     node {node.node_id}  pid {node.pid}  {node.address}{role}")
    postgres = postgres_pid(data_dir / "postgres")
    lines.append("postgres  not running" if postgres is None else f"postgres  pid {postgres}")
    return lines


def stop_stack(data_dir: Path, parts: Iterable[str] = PARTS) -> None:
    """Stop `parts` of the stack under `data_dir` (both by default); a part not running is
    left as it is."""
    wanted = set(parts)
    if "kafka" in wanted:
        stop_kafka(data_dir / "kafka")
    if "postgres" in wanted:
        stop_postgres(data_dir / "postgres")


def local_settings(settings: Settings, stack: LocalStack) -> Settings:
    """Settings pointed at the local stack: few partitions, replication 1 on a single node,
    3 with two in sync on a cluster."""
    from hookline.runtime.settings import Secret

    wanted = durability(stack.brokers)
    return settings.with_changes(
        kafka_bootstrap=stack.kafka_bootstrap,
        database_url=Secret(stack.database_url),
        replication_factor=wanted.replication_factor,
        min_insync_replicas=wanted.min_insync_replicas,
        partitions=min(settings.partitions, 3),
    )


def local_data_dir(settings: Settings) -> Path:
    return settings.data_dir / "local"


def resolve_infrastructure(settings: Settings) -> Settings:
    """Settings with Kafka and PostgreSQL filled in, starting the local stack for what is unset."""
    if settings.kafka_bootstrap is not None and settings.database_url is not None:
        return settings
    stack = start_stack(local_data_dir(settings), cache_dir=settings.cache_dir)
    local = local_settings(settings, stack)
    return local.with_changes(
        kafka_bootstrap=settings.kafka_bootstrap or local.kafka_bootstrap,
        database_url=settings.database_url or local.database_url,
    )
