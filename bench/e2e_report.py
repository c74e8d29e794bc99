"""The end-to-end benchmark's output: a table per scenario, a summary, and one JSON object."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from bench.e2e_hops import hop_lines
from bench.e2e_hostile import CRITERION, HOSTILE_KINDS, BurstStats, Comparison, Others
from bench.e2e_stats import Answers, PhaseStats

HOSTILE: Final = "hostile"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The bare aiohttp client loop's requests/s at each concurrency tried, in one run. The
    receiver's ceiling is the best of them: one concurrency may suit the loop, the receiver
    or the machine's load of the moment better than another."""

    per_s_by_concurrency: tuple[tuple[int, float], ...]
    load_average: tuple[float, float, float]

    @property
    def best(self) -> tuple[int, float]:
        """(concurrency, requests/s) of the fastest loop; the lowest concurrency on a tie."""
        return max(self.per_s_by_concurrency, key=lambda c: (c[1], -c[0]))

    @property
    def per_s(self) -> float:
        return self.best[1]

    def describe(self) -> str:
        concurrency, per_s = self.best
        each = ", ".join(f"{c}: {_fmt(r)}" for c, r in self.per_s_by_concurrency)
        return (
            f"{_fmt(per_s)} requests/s (best at concurrency {concurrency}; {each}; "
            f"load {self.load_average})"
        )


@dataclass(slots=True)
class ScenarioResult:
    name: str
    deliverers: int
    phases: dict[str, PhaseStats]
    replay_scan_events_per_s: float
    exit_codes: list[int]
    # figures of the subscriptions after the hostile scenario's three, in every scenario, so
    # the healthy scenario's same 97 compare with the hostile one's; in the JSON only through
    # the hostile scenario's `against_healthy`
    others: dict[str, Others] = field(default_factory=dict)
    burst: BurstStats | None = None

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "deliverers": self.deliverers,
            "phases": {name: stats.as_json() for name, stats in self.phases.items()},
            "replay_scan_events_per_s": self.replay_scan_events_per_s,
            "exit_codes": self.exit_codes,
        }
        if self.burst is not None:
            data["burst"] = self.burst.as_json()
        return data


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def answers_line(answers: Answers) -> str:
    """`202 x 3,000, 429 x 12 (Retry-After 1 x 12) in p50 4.1 / p99 20.3 ms`: every
    status, the 429s' waits, and how long the clients waited for the answers."""
    counts = ", ".join(f"{status} x {n:,}" for status, n in sorted(answers.statuses.items()))
    if answers.retry_after_s:
        waits = ", ".join(f"{w} x {n:,}" for w, n in sorted(answers.retry_after_s.items()))
        counts += f" (Retry-After {waits})"
    took = answers.answer_ms
    return f"{counts or 'nothing'} in p50 {took.p50:.1f} / p99 {took.p99:.1f} ms"


def _seconds(values: tuple[float, ...]) -> str:
    return " ".join(f"{v:.0f}" for v in values)


COLUMNS = (
    ("phase", 9),
    ("events", 7),
    ("pub/s", 8),
    ("deliv/s", 8),
    ("healthy/s", 10),
    ("p50 ms", 8),
    ("p95 ms", 8),
    ("p99 ms", 8),
    ("max ms", 8),
    ("healthy p99", 12),
    ("router ev/s", 12),
    ("missing", 8),
    ("load 1m", 8),
)


@dataclass(slots=True)
class Report:
    command: str
    events: int
    subscriptions: int
    scenarios: list[ScenarioResult] = field(default_factory=list)
    ceiling: Ceiling | None = None

    def print_scenario(self, result: ScenarioResult) -> None:
        print(
            f"\nscenario {result.name} ({result.deliverers} deliverer process(es)); "
            f"replay scan {_fmt(result.replay_scan_events_per_s)} events/s; "
            f"exit codes {result.exit_codes}"
        )
        print("  " + "".join(f"{name:>{width}}" for name, width in COLUMNS))
        for phase, s in result.phases.items():
            cells = (
                phase,
                str(s.events),
                _fmt(s.publish_per_s),
                _fmt(s.deliveries_per_s),
                _fmt(s.healthy_deliveries_per_s),
                f"{s.latency_ms.p50:.1f}",
                f"{s.latency_ms.p95:.1f}",
                f"{s.latency_ms.p99:.1f}",
                f"{s.latency_ms.max:.1f}",
                f"{s.healthy_latency_ms.p99:.1f}",
                _fmt(s.router_events_per_s),
                str(s.missing),
                f"{s.load_average[0]:.2f}",
            )
            print("  " + "".join(f"{c:>{w}}" for c, (_n, w) in zip(cells, COLUMNS, strict=True)))
        for phase, s in result.phases.items():
            if s.answers is not None:
                print(f"  {phase}: the API answered {answers_line(s.answers)}")
        hops = {phase: s.hops for phase, s in result.phases.items()}
        if any(h.count for phase_hops in hops.values() for h in phase_hops):
            print("  per hop (hookline_hop_seconds; p50/p99 interpolated within its buckets):")
            for line in hop_lines(hops):
                print(line)
        else:
            print("  per hop: no process exposes hookline_hop_seconds")
        if result.burst is not None:
            b = result.burst
            print(
                f"  burst of {b.events:,} events to one subscription: "
                f"routed in {b.routed_s:.1f} s, {b.delivered:,} delivered "
                f"in {b.drained_s:.1f} s ({_fmt(b.deliveries_per_s)}/s)"
            )

    def headline(self) -> ScenarioResult:
        named = {r.name: r for r in self.scenarios}
        return named.get("healthy", self.scenarios[0])

    def as_json(self) -> dict[str, object]:
        head = self.headline()
        fast = head.phases["max"]
        paced = next((s for p, s in head.phases.items() if p != "max"), fast)
        ceiling = self.ceiling.per_s if self.ceiling else float("nan")
        return {
            "scenario": head.name,
            "deliveries_per_s": fast.deliveries_per_s,
            "ceiling_per_s": ceiling,
            "ratio": round(fast.deliveries_per_s / ceiling, 3),
            "latency_ms": {
                "p50": paced.latency_ms.p50,
                "p95": paced.latency_ms.p95,
                "p99": paced.latency_ms.p99,
                "max": paced.latency_ms.max,
            },
            "router_events_per_s": fast.router_events_per_s,
            "replay_scan_events_per_s": head.replay_scan_events_per_s,
            "scenarios": [self._scenario_json(r) for r in self.scenarios],
            "ceiling_by_concurrency": {
                str(c): r for c, r in (self.ceiling.per_s_by_concurrency if self.ceiling else ())
            },
            "ceiling_load_average": self.ceiling.load_average if self.ceiling else None,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "command": self.command,
        }

    def _scenario_json(self, result: ScenarioResult) -> dict[str, object]:
        data = result.as_json()
        if result.name == HOSTILE:
            data["against_healthy"] = {
                "criterion": CRITERION.format(others=self.subscriptions - len(HOSTILE_KINDS)),
                "phases": {phase: c.as_json() for phase, c in self.hostile_comparisons()},
            }
        return data

    def hostile_comparisons(self) -> Iterator[tuple[str, Comparison]]:
        """Per phase, the hostile scenario's other subscriptions against the healthy one's."""
        named = {r.name: r for r in self.scenarios}
        healthy, hostile = named.get("healthy"), named.get(HOSTILE)
        if healthy is None or hostile is None:
            return
        for phase, others in hostile.others.items():
            base = healthy.others.get(phase)
            if base is not None:
                yield phase, Comparison.of(others, base)

    def print_summary(self) -> None:
        if not self.scenarios:
            return
        data = self.as_json()
        if self.ceiling is not None:
            print(
                "\nceiling (bare aiohttp client loop, same bodies, same receiver): "
                + self.ceiling.describe()
            )
        print(
            f"ours ({data['scenario']}, as fast as possible): "
            f"{_fmt(float(str(data['deliveries_per_s'])))} deliveries/s; "
            f"ratio ours/ceiling {data['ratio']}"
        )
        self.print_against_healthy()
        self.print_hostile()

    def print_against_healthy(self) -> None:
        healthy = {r.name: r for r in self.scenarios}.get("healthy")
        if healthy is None:
            return
        for other in self.scenarios:
            if other is healthy or other.name == HOSTILE:
                continue
            for phase, s in other.phases.items():
                base = healthy.phases.get(phase)
                if base is None:
                    continue
                kept = s.healthy_deliveries_per_s / max(base.healthy_deliveries_per_s, 1e-9)
                p99x = s.healthy_latency_ms.p99 / max(base.healthy_latency_ms.p99, 1e-9)
                print(
                    f"{other.name} vs healthy, {phase}: healthy endpoints keep {kept:.0%} "
                    f"of their deliveries/s, p99 x{p99x:.2f}"
                )

    def print_hostile(self) -> None:
        names = {r.name for r in self.scenarios}
        if HOSTILE not in names:
            return
        if "healthy" not in names:
            print("hostile: add --scenario healthy to compare with the healthy scenario")
            return
        comparisons = list(self.hostile_comparisons())
        others = self.subscriptions - len(HOSTILE_KINDS)
        print(f"hostile vs healthy, criterion: {CRITERION.format(others=others)}")
        for phase, c in comparisons:
            print(
                f"hostile vs healthy, {phase}: the other {others} keep "
                f"{c.kept_throughput_pct:.0f} % of their deliveries/s "
                f"({_fmt(c.deliveries_per_s)} vs {_fmt(c.healthy_deliveries_per_s)}), "
                f"p50 {c.p50_ms:,.0f} vs {c.healthy_p50_ms:,.0f} ms, "
                f"p99 {c.p99_ms:,.0f} vs {c.healthy_p99_ms:,.0f} ms (x{c.p99_ratio:.2f}): "
                f"{'met' if c.met else 'NOT met'}"
            )
            if len(c.p99_ms_by_second) > 1:
                print(
                    f"  their p99 ms per second of publish: {_seconds(c.p99_ms_by_second)}; "
                    f"healthy scenario: {_seconds(c.healthy_p99_ms_by_second)}"
                )
