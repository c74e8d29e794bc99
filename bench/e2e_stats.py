"""Figures of one end-to-end benchmark phase, from the receiver's first arrivals.

Latency is first-attempt latency: the arrival of the first request carrying an event's
webhook-id minus the moment the event was sent: the event's `occurred_at` (the body's
`timestamp`), or, for events sent through the API, the moment the client sent the request.
Deliveries are first arrivals on paths answering 200 (`/ok/...`, `/burst/...`); the window
runs from the first publish to the last such arrival. "Healthy" means the subscriptions that
are healthy in every scenario (index >= the bad count), so their figures compare across
scenarios; in the hostile scenario the bad count is its 3 hostile subscriptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from bench.e2e_hops import HopStats
from bench.e2e_receiver import DELIVERING_KINDS, kind_of

Row = tuple[str, float, str | None]  # path, arrival (unix s), body timestamp


@dataclass(frozen=True, slots=True)
class Published:
    """One phase's events: ids, the subscription index each goes to, and the timing."""

    ids: list[str]
    subs: list[int]
    started_s: float  # time.time() of the first publish
    publish_s: float  # seconds to publish (and flush) them all
    # time.time() each event's request left the client (events sent through the API, whose
    # occurred_at is the API's moment, in milliseconds); empty: the body's occurred_at
    sent_s: list[float] = field(default_factory=list)
    answers: Answers | None = None  # events sent through the API

    def origins_s(self, rows: Mapping[str, Row]) -> list[float | None]:
        """When each event was sent, by index; None when its first attempt has not arrived."""
        if self.sent_s:
            return [s if i in rows else None for i, s in zip(self.ids, self.sent_s, strict=True)]
        return [_occurred_s(rows.get(i)) for i in self.ids]


def _occurred_s(row: Row | None) -> float | None:
    if row is None or row[2] is None:
        return None
    return datetime.fromisoformat(row[2]).timestamp()


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float
    p95: float
    p99: float
    max: float

    @staticmethod
    def of(values_ms: Sequence[float]) -> Latency:
        if not values_ms:
            nan = float("nan")
            return Latency(nan, nan, nan, nan)
        ordered = sorted(values_ms)

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 1)

        return Latency(at(0.50), at(0.95), at(0.99), round(ordered[-1], 1))


@dataclass(frozen=True, slots=True)
class Answers:
    """How the API answered one phase's `POST /v1/events`: counts by status (`error` for a
    request that got no answer), for the 429s by `Retry-After`, and how long the clients
    waited for an answer (the publish's own latency, within the first-attempt latency)."""

    statuses: dict[str, int]
    retry_after_s: dict[str, int]
    answer_ms: Latency


@dataclass(frozen=True, slots=True)
class PhaseStats:
    events: int
    publish_per_s: float
    deliveries: int
    deliveries_per_s: float
    missing: int  # events whose first attempt never arrived
    latency_ms: Latency
    healthy_deliveries_per_s: float
    healthy_latency_ms: Latency
    router_events_per_s: float
    load_average: tuple[float, float, float]
    hops: tuple[HopStats, ...] = ()
    answers: Answers | None = None  # events sent through the API

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["hops"] = {h.hop: h.as_json() for h in self.hops}
        if self.answers is None:
            del data["answers"]
        return data


def _rate(count: int, started_s: float, arrivals: Sequence[float]) -> float:
    if not arrivals:
        return 0.0
    return round(count / max(max(arrivals) - started_s, 1e-9), 1)


def phase_stats(
    rows: Mapping[str, Row],
    published: Published,
    *,
    bad_count: int,
    router_events_per_s: float,
    load_average: tuple[float, float, float],
    hops: tuple[HopStats, ...] = (),
) -> PhaseStats:
    latencies: list[float] = []
    healthy_latencies: list[float] = []
    delivered_at: list[float] = []
    healthy_at: list[float] = []
    missing = 0
    origins = published.origins_s(rows)
    for event_id, sub, origin_s in zip(published.ids, published.subs, origins, strict=True):
        if origin_s is None:
            missing += 1
            continue
        path, arrived_s = rows[event_id][0], rows[event_id][1]
        latency_ms = (arrived_s - origin_s) * 1000
        latencies.append(latency_ms)
        if kind_of(path) in DELIVERING_KINDS:
            delivered_at.append(arrived_s)
        if sub >= bad_count:
            healthy_latencies.append(latency_ms)
            healthy_at.append(arrived_s)
    return PhaseStats(
        events=len(published.ids),
        publish_per_s=round(len(published.ids) / max(published.publish_s, 1e-9), 1),
        deliveries=len(delivered_at),
        deliveries_per_s=_rate(len(delivered_at), published.started_s, delivered_at),
        missing=missing,
        latency_ms=Latency.of(latencies),
        healthy_deliveries_per_s=_rate(len(healthy_at), published.started_s, healthy_at),
        healthy_latency_ms=Latency.of(healthy_latencies),
        router_events_per_s=round(router_events_per_s, 1),
        load_average=load_average,
        hops=hops,
        answers=published.answers,
    )


def p99_by_second(
    rows: Mapping[str, Row], published: Published, *, bad_count: int
) -> tuple[float, ...]:
    """p99 latency (ms) of the subscriptions from `bad_count` on, per second of publish time:
    where in a phase a tail comes from."""
    by_second: dict[int, list[float]] = {}
    origins = published.origins_s(rows)
    for event_id, sub, origin_s in zip(published.ids, published.subs, origins, strict=True):
        if sub < bad_count or origin_s is None:
            continue
        second = int(origin_s - published.started_s)
        by_second.setdefault(second, []).append((rows[event_id][1] - origin_s) * 1000)
    return tuple(Latency.of(by_second[k]).p99 for k in sorted(by_second))
