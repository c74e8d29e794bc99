"""One batch of the router: what it will produce, and the offsets it was derived from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition


@dataclass(slots=True)
class Batch:
    """The outputs of one batch and the offsets they were derived from."""

    outputs: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    next: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    commands: int = 0
    dead: Counter[str] = field(default_factory=Counter)

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        self.first.setdefault((topic, partition), offset)
        self.next[(topic, partition)] = offset + 1
        self.records += 1

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.next.items()]

    def starts(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.first.items()]
