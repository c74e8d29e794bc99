"""The end-to-end benchmark's output: a table per scenario, a summary, and one JSON object."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field

from bench.e2e_stats import PhaseStats


@dataclass(slots=True)
class ScenarioResult:
    name: str
    deliverers: int
    phases: dict[str, PhaseStats]
    replay_scan_events_per_s: float
    exit_codes: list[int]

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "deliverers": self.deliverers,
            "phases": {name: stats.as_json() for name, stats in self.phases.items()},
            "replay_scan_events_per_s": self.replay_scan_events_per_s,
            "exit_codes": self.exit_codes,
        }


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


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
    scenarios: list[ScenarioResult] = field(default_factory=list)
    ceiling_per_s: float | None = None
    ceiling_load_average: tuple[float, float, float] | None = None

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

    def headline(self) -> ScenarioResult:
        named = {r.name: r for r in self.scenarios}
        return named.get("healthy", self.scenarios[0])

    def as_json(self) -> dict[str, object]:
        head = self.headline()
        fast = head.phases["max"]
        paced = next((s for p, s in head.phases.items() if p != "max"), fast)
        ceiling = self.ceiling_per_s or float("nan")
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
            "scenarios": [r.as_json() for r in self.scenarios],
            "ceiling_load_average": self.ceiling_load_average,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "command": self.command,
        }

    def print_summary(self) -> None:
        if not self.scenarios:
            return
        data = self.as_json()
        print(
            f"\nceiling (bare aiohttp client loop, same bodies, same receiver): "
            f"{_fmt(float(str(data['ceiling_per_s'])))} requests/s "
            f"(load {self.ceiling_load_average})"
        )
        print(
            f"ours ({data['scenario']}, as fast as possible): "
            f"{_fmt(float(str(data['deliveries_per_s'])))} deliveries/s; "
            f"ratio ours/ceiling {data['ratio']}"
        )
        healthy = {r.name: r for r in self.scenarios}.get("healthy")
        if healthy is None:
            return
        for other in self.scenarios:
            if other is healthy:
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
