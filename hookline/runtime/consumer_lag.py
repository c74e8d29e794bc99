"""Consumer lag per group and topic, read from librdkafka's statistics of the consumers a
process already has: `hookline_consumer_lag{group,topic}`.

No request of its own: librdkafka fetches each assigned partition's offsets anyway and
reports them every `statistics.interval.ms` to a callback served by the consumer's own poll.
Lag sampled with admin requests from a thread aborted librdkafka 2.8.0 when a broker died
(`rd_kafka_enq_once_del_source_return`), so lag rides on what the consumers already know.

Each process reports the partitions it is assigned, so the group's lag is the sum over its
processes (`sum by (group, topic)`); a partition no process owns is not counted by anyone
(the group's coordinator, through `kafka-consumer-groups`, sees those). No partition label:
alerts are on a group falling behind, and a per-partition series would move between
processes on every rebalance.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from confluent_kafka import OFFSET_INVALID
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)

STATISTICS_INTERVAL_MS: Final = 5000
"""How often librdkafka reports its statistics, so how fresh the gauge is."""

_gauges: weakref.WeakKeyDictionary[CollectorRegistry, ConsumerLag] = weakref.WeakKeyDictionary()
_gauges_lock = threading.Lock()


def lag_by_topic(stats: Mapping[str, Any], *, read_committed: bool) -> dict[str, int]:
    """Records past the consumer's position, summed per topic over its assigned partitions.

    The position is `app_offset` (one past the last record handed to the application): what
    every hookline consumer really tracks, whether it commits to Kafka or keeps its offsets
    elsewhere (the projector, in PostgreSQL). The end is the last stable offset for a
    read_committed consumer (records of open transactions cannot be read yet), the high
    watermark otherwise. Partitions not assigned (`desired` false; `-1` is librdkafka's
    internal one) and those whose position or end is not known yet are left out."""
    end_field = "ls_offset" if read_committed else "hi_offset"
    lag: dict[str, int] = {}
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition in topic_stats["partitions"].values():
            if not partition["desired"] or partition["unknown"] or partition["partition"] < 0:
                continue
            position, end = partition["app_offset"], partition[end_field]
            if OFFSET_INVALID in (position, end):
                continue
            lag[topic] = lag.get(topic, 0) + max(0, end - position)
    return lag


class ConsumerLag:
    """The `hookline_consumer_lag` gauge of one registry; `hook` makes a consumer's
    statistics callback that keeps its group's series current."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "hookline_consumer_lag",
            "Records not yet read by this process's consumer of a group (its position to the"
            " partition's end), summed over its assigned partitions; from librdkafka's"
            " statistics, every 5 s",
            ["group", "topic"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ConsumerLag:
        """The one instance of `registry`: services that share a registry (the end-to-end
        tests run the router, deliverer and projector on one) share its gauge."""
        with _gauges_lock:
            lag = _gauges.get(registry)
            if lag is None:
                lag = _gauges[registry] = cls(registry)
            return lag

    def hook(self, group: str, *, read_committed: bool) -> Callable[[str], None]:
        """The `stats_cb` of one consumer of `group` (one hook per consumer)."""
        return _StatisticsHook(self.gauge, group, read_committed)


class _StatisticsHook:
    """Sets the group's series from the latest statistics only, so a topic whose partitions
    were all revoked drops out. It runs inside the consumer's poll, on the service's polling
    thread: it is cheap, and never raises (an exception would come out of that poll and stop
    the service over a metric), logging each kind of failure once instead."""

    def __init__(self, gauge: Gauge, group: str, read_committed: bool) -> None:
        self._gauge = gauge
        self._group = group
        self._read_committed = read_committed
        self._reported: set[str] = set()
        self._failures: set[str] = set()

    def __call__(self, stats_json: str) -> None:
        try:
            lag = lag_by_topic(orjson.loads(stats_json), read_committed=self._read_committed)
        except Exception as exc:  # noqa: BLE001 - a metric never stops the poll that served it
            kind = type(exc).__name__
            if kind not in self._failures:
                self._failures.add(kind)
                log.warning("consumer lag of %s not read from statistics: %r", self._group, exc)
            return
        for topic in self._reported - lag.keys():
            self._gauge.remove(self._group, topic)
        for topic, records in lag.items():
            self._gauge.labels(self._group, topic).set(records)
        self._reported = set(lag)
