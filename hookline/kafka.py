"""Kafka client configuration, built in one place so every client gets the same guarantees.

Producers always set acks=all and idempotence explicitly (librdkafka defaults idempotence to
off); consumers never auto-commit or auto-store offsets, so an offset is stored only after the
message's outputs are acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from hookline.settings import Settings

ClientConfig = dict[str, Any]

# librdkafka's own log lines go to this logger rather than straight to stderr; its errors
# that matter also surface as exceptions and error callbacks where they are handled
LIBRDKAFKA_LOGGER: Final = logging.getLogger("hookline.librdkafka")

_COMMON: Final[ClientConfig] = {
    "socket.keepalive.enable": True,
    "reconnect.backoff.max.ms": 2000,
    "log.connection.close": False,
    "logger": LIBRDKAFKA_LOGGER,
}


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap is None:
        raise ValueError("settings.kafka_bootstrap is not set")
    return settings.kafka_bootstrap


def producer_config(
    settings: Settings,
    *,
    client_id: str,
    transactional_id: str | None = None,
    linger_ms: int = 5,
) -> ClientConfig:
    config: ClientConfig = {
        **_COMMON,
        "bootstrap.servers": _bootstrap(settings),
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        "message.timeout.ms": 120_000,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = 60_000
        # librdkafka refuses a message timeout longer than the transaction timeout
        config["message.timeout.ms"] = 60_000
    return config


def consumer_config(
    settings: Settings,
    *,
    group_id: str,
    client_id: str,
    read_committed: bool = True,
    group_instance_id: str | None = None,
) -> ClientConfig:
    """`group_instance_id` makes a static member: a restart under the same id takes its
    partitions back at once instead of after the session timeout."""
    config: ClientConfig = {
        **_COMMON,
        "bootstrap.servers": _bootstrap(settings),
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        "max.poll.interval.ms": 300_000,
    }
    if group_instance_id is not None:
        config["group.instance.id"] = group_instance_id
    return config


def reader_config(settings: Settings, *, client_id: str) -> ClientConfig:
    """A group-less reader for tables built from compacted topics (assign, never subscribe)."""
    return {
        **_COMMON,
        "bootstrap.servers": _bootstrap(settings),
        "group.id": f"{client_id}-reader",
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }


def admin_config(settings: Settings) -> ClientConfig:
    return {**_COMMON, "bootstrap.servers": _bootstrap(settings)}
