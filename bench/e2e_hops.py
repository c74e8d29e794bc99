"""Where an event's time goes: the services' `hookline_hop_seconds` histograms, per phase.

Each service observes the hops it sees into `hookline_hop_seconds{hop="..."}` (the API
`accept_to_ack`; the router `event_to_router`, `route_to_commit`; the deliverer
`command_to_deliverer`, `consume_to_request`, `request_to_response`,
`response_to_record_ack`). The benchmark scrapes every process before and after a phase and
keeps the difference of the buckets: the phase's own observations. Percentiles are
interpolated linearly within a bucket, as Prometheus' `histogram_quantile` does, so they are
only as fine as the buckets. A hop no process exposes has no figures (printed `-`).
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from hookline.runtime.hops import METRIC, Hop

HOPS: Final = tuple(str(hop) for hop in Hop)
"""The hops in the order an event takes them; others a service exposes are listed after."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """One hop's observations: cumulative counts at each upper bound (the last is +Inf)."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    sum_s: float

    @property
    def count(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def __add__(self, other: Histogram) -> Histogram:
        """The observations of both, on the same buckets (two processes of one service)."""
        return self._combined(other, 1.0)

    def __sub__(self, other: Histogram) -> Histogram:
        """What was observed since `other`, an earlier scrape of the same processes."""
        return self._combined(other, -1.0)

    def _combined(self, other: Histogram, sign: float) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError(f"different buckets: {self.bounds} and {other.bounds}")
        cumulative = tuple(
            a + sign * b for a, b in zip(self.cumulative, other.cumulative, strict=True)
        )
        return Histogram(self.bounds, cumulative, self.sum_s + sign * other.sum_s)

    def quantile(self, q: float) -> float:
        """The `q` quantile in seconds, interpolated within its bucket (NaN when empty). In the
        +Inf bucket it is the highest finite bound: the histogram knows no more."""
        count = self.count
        if count <= 0:
            return math.nan
        rank = q * count
        lower, below = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.cumulative, strict=True):
            if cumulative >= rank and cumulative > below:
                if math.isinf(bound):
                    return lower
                return lower + (bound - lower) * (rank - below) / (cumulative - below)
            lower, below = bound, cumulative
        return lower


@dataclass(frozen=True, slots=True)
class HopStats:
    """One hop over one phase, in milliseconds (NaN when no process exposes the hop)."""

    hop: str
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float

    @staticmethod
    def of(hop: str, histogram: Histogram | None) -> HopStats:
        if histogram is None or histogram.count <= 0:
            nan = math.nan
            return HopStats(hop, 0, nan, nan, nan)
        count = histogram.count
        return HopStats(
            hop,
            round(count),
            round(histogram.sum_s / count * 1000, 2),
            round(histogram.quantile(0.50) * 1000, 2),
            round(histogram.quantile(0.99) * 1000, 2),
        )

    def as_json(self) -> dict[str, float]:
        return {
            "count": self.count,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


Scrape = dict[str, Histogram]
"""Hop name -> its histogram, summed over the processes scraped."""


def parse_hops(text: str) -> Scrape:
    """The `hookline_hop_seconds` histograms of one Prometheus text exposition."""
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            hop = sample.labels.get("hop")
            if hop is None:
                continue
            if sample.name == METRIC + "_bucket":
                buckets.setdefault(hop, {})[float(sample.labels["le"])] = sample.value
            elif sample.name == METRIC + "_sum":
                sums[hop] = sample.value
    return {
        hop: Histogram(tuple(sorted(b)), tuple(b[k] for k in sorted(b)), sums.get(hop, 0.0))
        for hop, b in buckets.items()
    }


def merged(scrapes: Iterable[Scrape]) -> Scrape:
    """One scrape per process, summed hop by hop."""
    total: Scrape = {}
    for scrape in scrapes:
        for hop, histogram in scrape.items():
            total[hop] = total[hop] + histogram if hop in total else histogram
    return total


def phase_hops(before: Scrape, after: Scrape) -> tuple[HopStats, ...]:
    """Every known hop, then any other the services expose, over the phase between scrapes."""
    names = [*HOPS, *sorted(set(after) - set(HOPS))]
    return tuple(HopStats.of(hop, _observed(hop, before, after)) for hop in names)


def _observed(hop: str, before: Scrape, after: Scrape) -> Histogram | None:
    """What `hop` observed between the scrapes; all of it when it first appears in `after`
    (a labelled histogram shows a hop only from its first observation)."""
    if hop not in after:
        return None
    return after[hop] - before[hop] if hop in before else after[hop]


def scrape(ports: Sequence[int]) -> Scrape:
    """The hop histograms of the services serving `/metrics` on these local ports."""
    texts = []
    for port in ports:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            texts.append(response.read().decode())
    return merged(parse_hops(text) for text in texts)


def hop_lines(phases: Mapping[str, Sequence[HopStats]]) -> list[str]:
    """The per-hop table of one scenario: a row per hop, count / mean / p50 / p99 per phase."""
    if not phases:
        return []
    head = f"  {'hop (ms)':<24}" + "".join(
        f"{phase + ': count':>15}{'mean':>8}{'p50':>8}{'p99':>8}" for phase in phases
    )
    rows = [head]
    by_phase = [{h.hop: h for h in hops} for hops in phases.values()]
    names = list(dict.fromkeys(h.hop for hops in phases.values() for h in hops))
    for name in names:
        cells = []
        for hops in by_phase:
            h = hops.get(name) or HopStats.of(name, None)
            figures = (_ms(h.mean_ms), _ms(h.p50_ms), _ms(h.p99_ms))
            cells.append(f"{_count(h.count, h.mean_ms):>15}" + "".join(f"{f:>8}" for f in figures))
        rows.append(f"  {name:<24}" + "".join(cells))
    return rows


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _count(count: int, mean_ms: float) -> str:
    return "-" if math.isnan(mean_ms) else f"{count:,}"
