"""Unit tests of bench.e2e_hops: the services' hop histograms, per phase, from their scrapes."""

from __future__ import annotations

import math

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import e2e_hops
from bench.e2e_hops import HOPS, HopStats, hop_lines, merged, parse_hops, phase_hops

BUCKETS_S = (0.001, 0.005, 0.01)


def exposition(observations: dict[str, list[float]], **extra: list[float]) -> str:
    """What a service's `/metrics` serves after observing these seconds per hop."""
    registry = CollectorRegistry()
    hops = Histogram(
        "hookline_hop_seconds", "time per hop", ["hop"], buckets=BUCKETS_S, registry=registry
    )
    other = Histogram("hookline_other_seconds", "not a hop", ["hop"], registry=registry)
    for hop, values in observations.items():
        for value in values:
            hops.labels(hop=hop).observe(value)
    for hop, values in extra.items():
        for value in values:
            other.labels(hop=hop).observe(value)
    return generate_latest(registry).decode()


def histogram(*cumulative: float, sum_s: float = 0.0) -> e2e_hops.Histogram:
    return e2e_hops.Histogram((*BUCKETS_S, math.inf), cumulative, sum_s)


def test_a_scrape_keeps_the_hop_histograms_and_nothing_else() -> None:
    text = exposition(
        {"route_to_commit": [0.0005, 0.003, 0.02]}, route_to_commit=[5.0, 5.0, 5.0, 5.0]
    )
    scraped = parse_hops(text)
    assert set(scraped) == {"route_to_commit"}
    hop = scraped["route_to_commit"]
    assert hop.bounds == (*BUCKETS_S, math.inf)
    assert hop.cumulative == (1.0, 2.0, 2.0, 3.0)
    assert hop.count == 3
    assert hop.sum_s == pytest.approx(0.0235)


def test_a_phase_counts_only_what_was_observed_between_its_scrapes() -> None:
    before = parse_hops(exposition({"consume_to_request": [0.009] * 50}))
    after = parse_hops(exposition({"consume_to_request": [0.009] * 50 + [0.002] * 10}))
    stats = {h.hop: h for h in phase_hops(before, after)}["consume_to_request"]
    assert stats.count == 10
    assert stats.mean_ms == pytest.approx(2.0)
    # all ten in the (1, 5] ms bucket: the median halfway into it
    assert stats.p50_ms == pytest.approx(3.0)


def test_a_hop_first_observed_during_the_phase_counts_whole_and_one_gone_counts_nothing() -> None:
    before = parse_hops(exposition({"route_to_commit": [0.002]}))
    after = parse_hops(exposition({"event_to_router": [0.002, 0.002]}))
    stats = {h.hop: h for h in phase_hops(before, after)}
    assert stats["event_to_router"].count == 2
    assert stats["route_to_commit"].count == 0


def test_percentiles_are_interpolated_within_their_bucket() -> None:
    hop = histogram(10, 60, 100, 100)
    assert hop.quantile(0.50) == pytest.approx(0.001 + 0.004 * 40 / 50)
    assert hop.quantile(0.99) == pytest.approx(0.005 + 0.005 * 39 / 40)
    assert hop.quantile(0.05) == pytest.approx(0.001 * 5 / 10)  # the first bucket starts at 0


def test_a_percentile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram(0, 0, 90, 100).quantile(0.99) == pytest.approx(0.01)


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert math.isnan(histogram(0, 0, 0, 0).quantile(0.5))


def test_the_processes_of_one_service_are_summed() -> None:
    one = parse_hops(exposition({"request_to_response": [0.002]}))
    two = parse_hops(exposition({"request_to_response": [0.002, 0.008]}))
    total = merged([one, two])["request_to_response"]
    assert total.cumulative == (0.0, 2.0, 3.0, 3.0)
    assert total.sum_s == pytest.approx(0.012)


def test_histograms_on_different_buckets_are_not_summed() -> None:
    other = e2e_hops.Histogram((0.5, math.inf), (1, 1), 0.1)
    with pytest.raises(ValueError, match="different buckets"):
        _ = histogram(1, 1, 1, 1) + other


def test_a_hop_no_service_exposes_has_no_figures_in_the_table_or_the_json() -> None:
    hops = phase_hops({}, parse_hops(exposition({"accept_to_ack": [0.002]})))
    assert [h.hop for h in hops] == list(HOPS)
    named = {h.hop: h for h in hops}
    assert named["accept_to_ack"].count == 1
    missing = named["event_to_router"]
    assert missing.count == 0
    assert orjson.loads(orjson.dumps(missing.as_json()))["p99_ms"] is None
    lines = hop_lines({"500/s": hops})
    row = next(line for line in lines if "event_to_router" in line)
    assert row.split()[1:] == ["-", "-", "-", "-"]
    row = next(line for line in lines if "accept_to_ack" in line)
    assert row.split()[1:] == ["1", "2.0", "3.0", "5.0"]


def test_hops_the_bench_does_not_know_are_listed_after_the_known_ones() -> None:
    after = parse_hops(exposition({"zz_new_hop": [0.002], "route_to_commit": [0.002]}))
    assert [h.hop for h in phase_hops({}, after)] == [*HOPS, "zz_new_hop"]


def test_the_table_has_a_column_group_per_phase() -> None:
    stats = (HopStats("route_to_commit", 1200, 12.5, 10.0, 480.0),)
    head, row = hop_lines({"500/s": stats, "max": stats})
    assert "500/s: count" in head
    assert "max: count" in head
    assert row.split() == ["route_to_commit", *["1,200", "12.5", "10.0", "480"] * 2]
