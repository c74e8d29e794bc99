"""The API's ingest admission shell (api/http/ingest.py) driven by a fake lag probe: the
gauge and pressure it keeps, the 429 it raises, and that it fails open when Kafka does not
answer."""

from __future__ import annotations

import logging
import threading

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from api.http.ingest import IngestAdmission, LagSampler, StageLag
from api.model.errors import IngestOverloaded
from core.admission import Pressure

LIMIT = 100


class Clock:
    def __init__(self) -> None:
        self.now_s = 50.0

    def __call__(self) -> float:
        return self.now_s


class FakeProbe:
    """Answers the readings it is given, or raises while `down`."""

    def __init__(self) -> None:
        self.route = StageLag(0, 0)
        self.deliver = StageLag(0, 0)
        self.down = False
        self.closed = False

    def read(self) -> tuple[StageLag, StageLag]:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))
        return self.route, self.deliver

    def close(self) -> None:
        self.closed = True


def _parts(
    max_lag: int = LIMIT,
) -> tuple[CollectorRegistry, Clock, FakeProbe, IngestAdmission, LagSampler]:
    registry = CollectorRegistry()
    clock = Clock()
    probe = FakeProbe()
    admission = IngestAdmission(max_lag, registry, clock=clock)
    return registry, clock, probe, admission, LagSampler(probe, admission, registry, clock=clock)


def _lag(registry: CollectorRegistry, stage: str) -> float | None:
    return registry.get_sample_value("hookline_ingest_lag", {"stage": stage})


def test_a_sample_sets_the_gauge_and_the_pressure_with_its_drain_rate() -> None:
    registry, clock, probe, admission, sampler = _parts()
    probe.route, probe.deliver = StageLag(30, 1000), StageLag(20, 500)
    sampler.sample()
    assert (_lag(registry, "route"), _lag(registry, "deliver")) == (30, 20)
    assert admission.pressure == Pressure(50, 0.0)
    clock.now_s += 2.0
    probe.route, probe.deliver = StageLag(130, 1100), StageLag(60, 600)
    sampler.sample()
    assert admission.pressure == Pressure(190, 100.0)  # 200 records consumed in 2 s


def test_over_the_limit_the_heavy_tenant_gets_a_429_and_the_light_one_is_admitted() -> None:
    registry, _, probe, admission, sampler = _parts()
    for _ in range(20):
        admission.admit("heavy")
    admission.admit("light")
    probe.route = StageLag(LIMIT + 5, 0)
    sampler.sample()
    with pytest.raises(IngestOverloaded) as refused:
        admission.admit("heavy")
    assert refused.value.status == 429
    assert refused.value.slug == "ingest-overloaded"
    assert refused.value.headers() == {"Retry-After": "60"}  # nothing drains
    assert refused.value.extensions() == {"reason": "fair_share", "lag": LIMIT + 5, "limit": LIMIT}
    admission.admit("light")
    assert registry.get_sample_value("hookline_ingest_refused_total", {"reason": "fair_share"}) == 1


def test_admission_fails_open_logs_once_and_counts_the_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, _, probe, admission, sampler = _parts()
    probe.route = StageLag(3 * LIMIT, 0)
    sampler.sample()
    with pytest.raises(IngestOverloaded):
        admission.admit("anyone")
    probe.down = True
    with caplog.at_level(logging.WARNING, logger="api.http.ingest"):
        sampler.sample()
        sampler.sample()
    admission.admit("anyone")  # the lag is unknown: admitted
    assert admission.pressure is None
    assert _lag(registry, "route") is None  # no stale value on the gauge
    assert registry.get_sample_value("hookline_ingest_lag_sample_failures_total") == 2
    assert len([r for r in caplog.records if "cannot be read" in r.message]) == 1
    probe.down = False
    sampler.sample()
    with pytest.raises(IngestOverloaded):
        admission.admit("anyone")


def test_switched_off_it_admits_everything() -> None:
    _, _, _, admission, _ = _parts(max_lag=0)
    admission.pressure = Pressure(10**9, 0.0)
    assert not admission.enabled
    admission.admit("anyone")


def test_the_sampler_closes_its_probe_when_it_stops() -> None:
    _, _, probe, admission, sampler = _parts()
    stopping = threading.Event()
    stopping.set()
    sampler.run(stopping)  # one sample, then it sees the stop
    assert probe.closed
    assert admission.pressure == Pressure(0, 0.0)
