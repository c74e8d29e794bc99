"""The router's Prometheus metrics, registered in the registry its composition root passes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hookline.runtime.hops import Hop, hop_histogram


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "hookline_router_events",
            "Records read from the events topic and committed (routed or dead-lettered)",
            registry=registry,
        )
        self.commands = Counter(
            "hookline_router_commands",
            "Delivery commands emitted and committed",
            registry=registry,
        )
        self.dead_letters = Counter(
            "hookline_router_dead_letters",
            "Event records that could not be decoded, sent to the dead-letters topic",
            ["reason"],
            registry=registry,
        )
        self.aborted = Counter(
            "hookline_router_transactions_aborted",
            "Transactions aborted and their batch retried",
            registry=registry,
        )
        self.clients_rebuilt = Counter(
            "hookline_router_clients_rebuilt",
            "Times the consumer and transactional producer were left behind (a call wedged"
            " past its deadline, a fatal consumer error) and built anew, by cause",
            ["cause"],
            registry=registry,
        )
        self.lag = Gauge(
            "hookline_router_lag_events",
            "Events not yet routed on the partitions this process owns",
            registry=registry,
        )
        self.subscriptions = Gauge(
            "hookline_router_active_subscriptions",
            "Active subscriptions in the routing table",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "hookline_router_batch_seconds",
            "Time to route and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        hops = hop_histogram(registry)
        self.event_to_router = hops.labels(Hop.EVENT_TO_ROUTER)
        self.route_to_commit = hops.labels(Hop.ROUTE_TO_COMMIT)
