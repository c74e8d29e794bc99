"""Where an event's time goes between its publish and its webhook's arrival.

One histogram, `hookline_hop_seconds{hop}`, in every process that handles an event on its
way, so the latency budget is read from the services themselves rather than estimated. The
hops follow one event in order; the record timestamps they start from are the moments a
producer took the record (Kafka's CreateTime), so two hops that meet at a produce overlap
by that record's acknowledgement.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import Final
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Histogram

METRIC: Final = "hookline_hop_seconds"
BUCKETS_S: Final = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05,
    0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Fine below 50 ms, where the budget of a moderate load lies."""


class Hop(StrEnum):
    ACCEPT_TO_ACK = "accept_to_ack"
    """API: a publish request read -> Kafka acknowledged the event (acks=all)."""
    EVENT_TO_ROUTER = "event_to_router"
    """Router: the event record's timestamp -> the router read it."""
    ROUTE_TO_COMMIT = "route_to_commit"
    """Router: read -> the transaction holding its commands committed."""
    COMMAND_TO_DELIVERER = "command_to_deliverer"
    """Deliverer: the command record's timestamp (taken inside the router's transaction, so
    this includes its commit) -> the deliverer read it."""
    CONSUME_TO_REQUEST = "consume_to_request"
    """Deliverer: read -> its first HTTP request started (lanes, rate limits, the loop)."""
    REQUEST_TO_RESPONSE = "request_to_response"
    """Deliverer: the HTTP request, deadline included."""
    RESPONSE_TO_RECORD_ACK = "response_to_record_ack"
    """Deliverer: the response -> Kafka acknowledged the attempt's record."""


_histograms: WeakKeyDictionary[CollectorRegistry, Histogram] = WeakKeyDictionary()
_histograms_lock = threading.Lock()


def hop_histogram(registry: CollectorRegistry) -> Histogram:
    """The one histogram of `registry`: services that share a registry (the end-to-end tests
    run the router, deliverer and projector on one) share it, each observing its own hops."""
    with _histograms_lock:
        histogram = _histograms.get(registry)
        if histogram is None:
            histogram = _histograms[registry] = Histogram(
                METRIC,
                "Time an event spends in one hop of its way from publish to webhook, by hop",
                ["hop"],
                buckets=BUCKETS_S,
                registry=registry,
            )
        return histogram
