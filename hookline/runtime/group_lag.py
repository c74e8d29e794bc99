"""Consumer lag of whole consumer groups, from their committed offsets and the partitions'
high watermarks, sampled periodically for Prometheus.

Lag per group, not per process: a process only knows the partitions it owns, and a partition
nobody owns (every member crashed) is exactly the one that must show up. The cost is bounded
by the sampling period, never by traffic: two admin requests per group every LAG_EVERY_S.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Final

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import CollectorRegistry, Gauge

from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Settings

log = logging.getLogger(__name__)

LAG_EVERY_S: Final = 15.0
REQUEST_TIMEOUT_S: Final = 10.0


def lag_by_topic(
    committed: Mapping[tuple[str, int], int], ends: Mapping[tuple[str, int], int]
) -> dict[str, int]:
    """Records past each topic's committed offsets; a partition whose end is unknown (it
    went away) counts nothing rather than a guess."""
    lag: dict[str, int] = {}
    for (topic, partition), offset in committed.items():
        end = ends.get((topic, partition))
        if end is not None:
            lag[topic] = lag.get(topic, 0) + max(0, end - offset)
    return lag


class GroupLag:
    """`sample()` sets `hookline_consumer_lag_records{group,topic}` for each group."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, groups: Sequence[str]
    ) -> None:
        self._settings = settings
        self._groups = tuple(groups)
        self._admin: AdminClient | None = None
        self._lag = Gauge(
            "hookline_consumer_lag_records",
            "Records not yet consumed by a consumer group (committed offset to high"
            " watermark, read_committed), by group and topic, sampled every 15 s",
            ["group", "topic"],
            registry=registry,
        )

    def run(self, stopping: threading.Event, every_s: float) -> None:
        """Sample now and every `every_s` until `stopping` is set (on a thread of its own:
        an admin request may take up to REQUEST_TIMEOUT_S)."""
        while True:
            self.sample()
            if stopping.wait(every_s):
                return

    def sample(self) -> None:
        """One sample of every group; a broker that does not answer leaves the last values
        (the gauges then go stale rather than falsely to zero) and is logged."""
        if self._admin is None:
            self._admin = AdminClient(admin_config(self._settings))
        for group in self._groups:
            try:
                lag = self._group_lag(self._admin, group)
            except KafkaException as exc:
                log.warning("consumer lag of %s not sampled: %s", group, exc)
                continue
            for topic, records in lag.items():
                self._lag.labels(group, topic).set(records)

    def _group_lag(self, admin: AdminClient, group: str) -> dict[str, int]:
        request = [ConsumerGroupTopicPartitions(group)]
        found = admin.list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT_S)
        partitions = found[group].result().topic_partitions or []
        committed = {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.offset >= 0}
        if not committed:
            return {}
        specs = {TopicPartition(t, p): OffsetSpec.latest() for t, p in committed}
        answers = admin.list_offsets(
            specs,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=REQUEST_TIMEOUT_S,
        )
        ends = {(tp.topic, tp.partition): future.result().offset for tp, future in answers.items()}
        return lag_by_topic(committed, ends)
