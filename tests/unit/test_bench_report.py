"""Unit tests of the end-to-end benchmark's pure parts: the ceiling, the API's answers, the
latency of events sent through the API, the report's JSON and the options."""

from __future__ import annotations

import argparse
import math

import pytest

from bench.e2e import paced_rates
from bench.e2e_hops import HopStats
from bench.e2e_ingest import Sent, published_of
from bench.e2e_report import Ceiling, Report, ScenarioResult, answers_line
from bench.e2e_stats import Answers, Latency, PhaseStats, Published, Row, phase_stats
from bench.options import add_arguments

LOAD = (1.0, 1.0, 1.0)
TOOK = Latency.of([4.0])


def test_the_ceiling_is_the_best_concurrency() -> None:
    ceiling = Ceiling(((16, 4100.0), (64, 5800.0), (256, 5200.0), (1024, 3000.0)), LOAD)
    assert ceiling.best == (64, 5800.0)
    assert ceiling.per_s == 5800.0
    described = ceiling.describe()
    assert "5,800 requests/s (best at concurrency 64" in described
    assert "1024: 3,000" in described


def test_on_a_tie_the_ceiling_names_the_lowest_concurrency() -> None:
    assert Ceiling(((256, 5000.0), (16, 5000.0)), LOAD).best == (16, 5000.0)


def test_only_accepted_events_are_expected_and_every_answer_is_counted() -> None:
    sent = [
        Sent(0, 100.0, 100.010, "202", "e0", None),
        Sent(1, 100.5, 100.502, "429", None, "1"),
        Sent(2, 101.0, 101.030, "202", "e2", None),
        Sent(3, 101.5, 101.502, "429", None, "2"),
        Sent(4, 102.0, 102.002, "429", None, "1"),
        Sent(5, 102.5, 110.000, "error", None, None),
        Sent(6, 103.0, 103.004, "503", None, None),
    ]
    published = published_of(sent, started_s=100.0, publish_s=3.0)
    assert published.ids == ["e0", "e2"]
    assert published.subs == [0, 2]
    assert published.sent_s == [100.0, 101.0]
    answers = published.answers
    assert answers is not None
    assert answers.statuses == {"202": 2, "429": 3, "error": 1, "503": 1}
    assert answers.retry_after_s == {"1": 2, "2": 1}
    # how long the answers took, the request that got none left out
    assert answers.answer_ms.max == pytest.approx(30.0)
    assert answers.answer_ms.p50 == pytest.approx(2.0, abs=0.1)
    assert answers_line(answers) == (
        "202 x 2, 429 x 3, 503 x 1, error x 1 (Retry-After 1 x 2, 2 x 1) in p50 2.0 / p99 30.0 ms"
    )


def test_without_429s_the_answers_line_names_the_statuses_only() -> None:
    answers = Answers({"202": 3000}, {}, Latency.of([4.0] * 3000))
    assert answers_line(answers) == "202 x 3,000 in p50 4.0 / p99 4.0 ms"


def rows(*arrivals: tuple[str, float]) -> dict[str, Row]:
    # the body's timestamp (occurred_at) is the API's moment, later than the client's send
    return {i: ("/ok/0", s, "2026-12-05T18:00:00.000+00:00") for i, s in arrivals}


def test_latency_of_an_event_sent_through_the_api_runs_from_the_clients_send() -> None:
    published = Published(["a", "b", "c"], [5, 6, 7], 100.0, 1.0, sent_s=[100.0, 100.5, 101.0])
    stats = phase_stats(
        rows(("a", 100.010), ("b", 100.530)),
        published,
        bad_count=0,
        router_events_per_s=1.0,
        load_average=LOAD,
    )
    assert stats.missing == 1
    assert stats.latency_ms.p50 == pytest.approx(10.0)
    assert stats.latency_ms.max == pytest.approx(30.0)


def test_latency_of_an_event_published_to_kafka_runs_from_its_occurred_at() -> None:
    occurred = 1796493600.0  # 2026-12-05T18:00:00Z
    published = Published(["a"], [0], occurred, 1.0)
    stats = phase_stats(
        rows(("a", occurred + 0.25)),
        published,
        bad_count=0,
        router_events_per_s=1.0,
        load_average=LOAD,
    )
    assert stats.latency_ms.p50 == pytest.approx(250.0)


def test_the_json_reports_every_concurrency_the_best_as_ceiling_and_hops_by_name() -> None:
    published = Published(
        ["a"], [0], 100.0, 1.0, sent_s=[100.0], answers=Answers({"202": 1}, {}, TOOK)
    )
    hops = (HopStats("accept_to_ack", 1, 2.0, 3.0, 5.0),)
    stats = phase_stats(
        rows(("a", 100.5)),
        published,
        bad_count=0,
        router_events_per_s=1.0,
        load_average=LOAD,
        hops=hops,
    )
    report = Report(command="hookline bench", events=1, subscriptions=1)
    report.scenarios.append(ScenarioResult("api", 1, {"500/s": stats, "max": stats}, 1.0, [0]))
    report.ceiling = Ceiling(((16, 1.0), (64, 4.0)), LOAD)
    data = report.as_json()
    assert data["ceiling_per_s"] == 4.0
    assert data["ceiling_by_concurrency"] == {"16": 1.0, "64": 4.0}
    assert data["ratio"] == pytest.approx(2.0 / 4.0, abs=0.001)
    scenario = data["scenarios"][0]  # type: ignore[index]
    phase = scenario["phases"]["500/s"]
    assert phase["hops"] == {
        "accept_to_ack": {"count": 1, "mean_ms": 2.0, "p50_ms": 3.0, "p99_ms": 5.0}
    }
    assert phase["answers"] == {
        "statuses": {"202": 1},
        "retry_after_s": {},
        "answer_ms": {"p50": 4.0, "p95": 4.0, "p99": 4.0, "max": 4.0},
    }


def test_phases_of_events_published_to_kafka_have_no_answers_in_the_json() -> None:
    stats = phase_stats(
        rows(),
        Published([], [], 100.0, 1.0),
        bad_count=0,
        router_events_per_s=math.nan,
        load_average=LOAD,
    )
    assert "answers" not in stats.as_json()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_one_command_measures_several_rates_each_once() -> None:
    args = parse("--rate", "500", "--rate", "1000", "--rate", "500")
    assert paced_rates(args.rate) == [500.0, 1000.0]
    assert paced_rates(parse().rate) == [1000.0]
    assert paced_rates(parse("--rate", "0").rate) == []


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (("--clients", "0"), "argument --clients: must be 1 or more, got 0"),
        (("--ceiling-concurrency", "-4"), "argument --ceiling-concurrency: must be 1 or more"),
        (("--rate", "-1"), "argument --rate: must be 0 or more, got -1"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    argv: tuple[str, ...], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert error in capsys.readouterr().err


def printed_scenario(stats: PhaseStats, capsys: pytest.CaptureFixture[str]) -> str:
    report = Report(command="hookline bench", events=1, subscriptions=1)
    report.print_scenario(ScenarioResult("api", 1, {"500/s": stats}, 1.0, [0]))
    return capsys.readouterr().out


def test_a_scenario_prints_the_apis_answers_and_the_hops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    published = Published(
        ["a"],
        [0],
        100.0,
        1.0,
        sent_s=[100.0],
        answers=Answers({"202": 1, "429": 2}, {"1": 2}, TOOK),
    )
    hops = (HopStats("accept_to_ack", 1, 2.0, 3.0, 5.0), HopStats.of("event_to_router", None))
    stats = phase_stats(
        rows(("a", 100.5)),
        published,
        bad_count=0,
        router_events_per_s=1.0,
        load_average=LOAD,
        hops=hops,
    )
    out = printed_scenario(stats, capsys)
    assert "500/s: the API answered 202 x 1, 429 x 2 (Retry-After 1 x 2) in p50 4.0" in out
    assert "interpolated within its buckets" in out
    assert "event_to_router" in out


def test_a_scenario_whose_services_expose_no_hops_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hops = (HopStats.of("accept_to_ack", None),)
    stats = phase_stats(
        rows(("a", 100.5)),
        Published(["a"], [0], 100.0, 1.0, sent_s=[100.0]),
        bad_count=0,
        router_events_per_s=1.0,
        load_average=LOAD,
        hops=hops,
    )
    out = printed_scenario(stats, capsys)
    assert "per hop: no process exposes hookline_hop_seconds" in out
    assert "accept_to_ack" not in out
    assert "the API answered" not in out
