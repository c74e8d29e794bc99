"""What the cluster scenarios ask the three brokers: who leads which partition, and whether
every replica is back in sync after a fault."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from confluent_kafka.admin import AdminClient

# Kafka's own topics whose replicas the router's transactions and every group's offsets need
INTERNAL_TOPICS: Final = ("__consumer_offsets", "__transaction_state")


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One partition as the cluster's metadata shows it; `leader` -1 when it has none."""

    topic: str
    partition: int
    leader: int
    in_sync: tuple[int, ...]


def partitions(bootstrap: str, prefix: str) -> list[PartitionView]:
    """The partitions of the topics named `prefix.*` and of Kafka's internal topics."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=10)
    return [
        PartitionView(name, p.id, p.leader, tuple(p.isrs))
        for name, topic in metadata.topics.items()
        if name.startswith(f"{prefix}.") or name in INTERNAL_TOPICS
        for p in topic.partitions.values()
    ]


def busiest_leader(views: Iterable[PartitionView]) -> int:
    """The node leading the most partitions, the lowest id among equals (so a seed replays
    the same choice); partitions without a leader do not count."""
    led = Counter(view.leader for view in views if view.leader >= 0)
    if not led:
        raise ValueError("no partition has a leader")
    return min(led, key=lambda node: (-led[node], node))


def out_of_sync(views: Iterable[PartitionView], replicas: int) -> list[PartitionView]:
    """The partitions with fewer than `replicas` in sync, or without a leader."""
    return [view for view in views if view.leader < 0 or len(view.in_sync) < replicas]
