"""The deliverer's Prometheus metrics, registered in the registry its composition root passes."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hookline.runtime.hops import Hop, hop_histogram
from hookline.runtime.labels import BoundedLabels

TENANT_LABELS: Final = 100
"""Tenants with a series of their own in the per-tenant counters; later ones count as `other`."""


class DelivererMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "hookline_deliverer_attempts",
            "Attempt records written, by outcome (delivered, retrying, dead, failed)",
            ["outcome"],
            registry=registry,
        )
        self.tenant_attempts = Counter(
            "hookline_deliverer_tenant_attempts",
            "Attempt records written, by tenant (the first 100 this process saw; later ones"
            " as `other`) and outcome (delivered, retrying, dead, failed)",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.tenants = BoundedLabels(TENANT_LABELS)
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
        self.lane_oldest_age = Gauge(
            "hookline_deliverer_lane_oldest_age_seconds",
            "Age of the oldest command waiting in a subscription lane (since it was created);"
            " with hookline_deliverer_backlog_oldest_age_seconds, the oldest unfinished command",
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
        self.backlogged = Counter(
            "hookline_deliverer_backlogged",
            "Commands written into a subscription's backlog, by why: busy (lane full or"
            " backlog ahead), slow (waited a second in its lane), retry, timer (not yet due),"
            " held (its endpoint asked to wait with Retry-After), handover (stopping)",
            ["why"],
            registry=registry,
        )
        self.backlog_depth = Gauge(
            "hookline_deliverer_backlog_depth",
            "Commands in the backlogs of the partitions this process owns",
            registry=registry,
        )
        self.backlog_top = Gauge(
            "hookline_deliverer_backlog_top_depth",
            "Backlog of the (at most 5) subscriptions with the deepest backlogs",
            ["subscription_id"],
            registry=registry,
        )
        self.backlog_oldest_age = Gauge(
            "hookline_deliverer_backlog_oldest_age_seconds",
            "Age of the oldest backlogged command (since it was created)",
            registry=registry,
        )
        self.backlog_timers = Gauge(
            "hookline_deliverer_backlog_timers",
            "Backlogged commands not yet due, by how far off: 1m, 10m, 1h, later",
            ["due"],
            registry=registry,
        )
        self.backlog_feed_cap = Gauge(
            "hookline_deliverer_backlog_feed_cap",
            "Backlogged commands that may be lent to lanes at once (halved while the process"
            " is busy with fresh commands, grown by one per quiet loop turn)",
            registry=registry,
        )
        self.request_limit = Gauge(
            "hookline_deliverer_request_limit",
            "Requests the process may run at once, shared evenly among the subscriptions with"
            " work (a tenth lower after a loop turn slower than 25 ms, one higher otherwise)",
            registry=registry,
        )
        self.restore_seconds = Histogram(
            "hookline_deliverer_backlog_restore_seconds",
            "Time to restore one partition's backlog from its changelog",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )
        self.paused_partitions = Gauge(
            "hookline_deliverer_paused_partitions",
            "Partitions paused for back-pressure or a backlog being restored",
            registry=registry,
        )
        hops = hop_histogram(registry)
        self.command_to_deliverer = hops.labels(Hop.COMMAND_TO_DELIVERER)
        self.consume_to_request = hops.labels(Hop.CONSUME_TO_REQUEST)
        self.request_to_response = hops.labels(Hop.REQUEST_TO_RESPONSE)
        self.response_to_record_ack = hops.labels(Hop.RESPONSE_TO_RECORD_ACK)
