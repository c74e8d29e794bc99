"""The deliverer's Prometheus metrics, registered in the registry its composition root passes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DelivererMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "hookline_deliverer_attempts",
            "Attempt records written, by outcome (delivered, retrying, dead, failed)",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "hookline_deliverer_attempt_seconds",
            "Duration of one HTTP attempt, deadline included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0),
            registry=registry,
        )
        self.lane_depth = Gauge(
            "hookline_deliverer_lane_depth",
            "Commands held in subscription lanes (queued or being sent)",
            registry=registry,
        )
        self.lanes = Gauge(
            "hookline_deliverer_lanes", "Subscription lanes holding work", registry=registry
        )
        self.in_flight = Gauge(
            "hookline_deliverer_in_flight",
            "Commands read and not yet finished (outputs acknowledged)",
            registry=registry,
        )
        self.retry_tier_depth = Gauge(
            "hookline_deliverer_retry_tier_depth",
            "Commands waiting in a retry tier on the partitions this process owns",
            ["tier"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "hookline_deliverer_dead_letters",
            "Records sent to the dead-letters topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.disabled = Counter(
            "hookline_deliverer_disabled_subscriptions",
            "Subscriptions this process disabled (410 Gone, or no success for too long)",
            registry=registry,
        )
        self.spilled = Counter(
            "hookline_deliverer_spilled",
            "Commands handed to the shortest retry tier unattempted (lane full, shutdown)",
            registry=registry,
        )
        self.paused_partitions = Gauge(
            "hookline_deliverer_paused_partitions",
            "Partitions paused for back-pressure or a retry not yet due",
            registry=registry,
        )
