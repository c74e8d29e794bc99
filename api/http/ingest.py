"""The API's shell over `core.admission`: the lag of delivery behind the publishes, sampled
once a second on a thread of its own, and the check each publish makes against it.

The lag of a stage is its group's committed offsets to the partitions' high watermarks:
`<prefix>.router` on `events` (accepted, not yet routed) and `<prefix>.deliverer` on
`deliveries` (routed, not yet read by a deliverer). Each group is read by a plain consumer
that never subscribes (so it never joins the group) with `committed()` and
`get_watermark_offsets()`: no AdminClient, whose requests timing out against a killed broker
aborted librdkafka 2.8.0 (docs/architecture.md, "Pinned"). It reads read_uncommitted, so
the offset fetch never waits for the router's transactions to commit their offsets.

Admission fails open: until a sample is read, and whenever one cannot be, every publish is
admitted (`hookline_ingest_lag_sample_failures_total` counts the failures); a lag the API
cannot see must not stop the tenants from publishing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.model.errors import IngestOverloaded
from core.admission import LagSample, Pressure, RecentPublishes, judge, pressure
from hookline.runtime.kafka import consumer_config
from hookline.runtime.settings import Service, Settings

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S: Final = 1.0
KAFKA_TIMEOUT_S: Final = 2.0
"""Each request of a sample; a broker that does not answer fails the sample (fail open)."""
RATE_SAMPLES: Final = 5
"""Samples the drain rate is measured over (about 5 s): offsets move in steps, as each
deliverer commits every half second and the router once per transaction."""


class IngestAdmission:
    """The check of each publish: count it for its tenant, then judge it against the
    pressure the sampler last set (an attribute swap, read without a lock). Off when
    `max_lag` is 0."""

    def __init__(
        self, max_lag: int, registry: CollectorRegistry, *, clock: Callable[[], float]
    ) -> None:
        self._max_lag = max_lag
        self._recent = RecentPublishes(clock=clock)
        self.pressure: Pressure | None = None
        self._refused = Counter(
            "hookline_ingest_refused",
            "publishes refused (429 ingest-overloaded) because delivery lags behind, by rule:"
            " fair_share (over the limit, tenant above its share), overloaded (over twice it)",
            ["reason"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        return self._max_lag > 0

    def admit(self, tenant: str) -> None:
        """Count one publish of `tenant`; IngestOverloaded (429) when it is refused."""
        if not self.enabled:
            return
        count = self._recent.record(tenant)
        refusal = judge(
            self._max_lag,
            self.pressure,
            tenant_count=count,
            total=self._recent.total,
            tenants=self._recent.tenants,
        )
        if refusal is not None:
            self._refused.labels(refusal.reason).inc()
            raise IngestOverloaded(refusal)


@dataclass(frozen=True, slots=True)
class StageLag:
    """One stage's records not yet consumed, and its group's committed offsets summed."""

    lag: int
    consumed: int


class LagProbe(Protocol):
    def read(self) -> tuple[StageLag, StageLag]:
        """The route and deliver stages now; raises when Kafka does not answer."""
        ...

    def close(self) -> None: ...


class KafkaLagProbe:
    """One consumer per measured group, used by the sampler's thread only."""

    def __init__(self, settings: Settings, *, client_id: str) -> None:
        self._stages = [
            (settings.topic("events"), self._consumer(settings, "router", client_id)),
            (settings.topic("deliveries"), self._consumer(settings, "deliverer", client_id)),
        ]

    @staticmethod
    def _consumer(settings: Settings, service: Service, client_id: str) -> Consumer:
        config = consumer_config(
            settings,
            group_id=settings.group(service),
            client_id=f"{client_id}-{service}",
            read_committed=False,
        )
        return Consumer(config)

    def read(self) -> tuple[StageLag, StageLag]:
        (events, router), (deliveries, deliverer) = self._stages
        return _stage_lag(router, events), _stage_lag(deliverer, deliveries)

    def close(self) -> None:
        for _, consumer in self._stages:
            consumer.close()


def _stage_lag(consumer: Consumer, topic: str) -> StageLag:
    """The group's lag on `topic`: from each partition's committed offset (its low watermark
    when the group never committed one: its consumers start from the earliest) to its high
    watermark."""
    metadata = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics[topic]
    if metadata.error is not None:
        raise KafkaException(metadata.error)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    lag = consumed = 0
    for committed in consumer.committed(partitions, timeout=KAFKA_TIMEOUT_S):
        if committed.error is not None:
            raise KafkaException(committed.error)
        marks = consumer.get_watermark_offsets(committed, timeout=KAFKA_TIMEOUT_S)
        if marks is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"watermarks of {topic}"))
        low, high = marks
        position = committed.offset if committed.offset >= 0 else low
        lag += max(0, high - position)
        consumed += position
    return StageLag(lag, consumed)


class LagSampler:
    """Samples the probe every `interval_s` until stopped, keeps `hookline_ingest_lag{stage}`
    and hands the admission its pressure; closes the probe when it stops (its thread owns
    the consumers)."""

    def __init__(
        self,
        probe: LagProbe,
        admission: IngestAdmission,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float],
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self._probe = probe
        self._admission = admission
        self._clock = clock
        self._interval_s = interval_s
        self._samples: deque[LagSample] = deque(maxlen=RATE_SAMPLES + 1)
        self._failing = False
        self._lag = Gauge(
            "hookline_ingest_lag",
            "what the API's admission judges by, sampled every second: route = events not yet"
            " routed (group <prefix>.router on events), deliver = commands not yet read by"
            " the deliverers (<prefix>.deliverer on deliveries); absent while unknown",
            ["stage"],
            registry=registry,
        )
        self._failures = Counter(
            "hookline_ingest_lag_sample_failures",
            "lag samples that could not be read (Kafka did not answer); publishes are"
            " admitted meanwhile",
            registry=registry,
        )

    def run(self, stopping: threading.Event) -> None:
        try:
            while True:
                self.sample()
                if stopping.wait(self._interval_s):
                    return
        finally:
            self._probe.close()

    def sample(self) -> None:
        """One reading; any failure admits every publish until a reading succeeds."""
        try:
            route, deliver = self._probe.read()
        except Exception as exc:  # noqa: BLE001 - admission fails open; never stop the API
            self._failed(exc)
            return
        if self._failing:
            self._failing = False
            log.warning("ingest lag is read again: admission applies again")
        self._samples.append(
            LagSample(self._clock(), route.lag, deliver.lag, route.consumed + deliver.consumed)
        )
        self._lag.labels("route").set(route.lag)
        self._lag.labels("deliver").set(deliver.lag)
        self._admission.pressure = pressure(self._samples[0], self._samples[-1])

    def _failed(self, exc: Exception) -> None:
        self._admission.pressure = None
        self._failures.inc()
        self._lag.clear()
        if not self._failing:
            self._failing = True
            log.warning("ingest lag cannot be read, every publish is admitted: %r", exc)
