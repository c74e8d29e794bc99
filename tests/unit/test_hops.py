"""The hop histogram: one per registry, shared by the services that share a registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hookline.runtime.hops import Hop, hop_histogram


def test_services_sharing_a_registry_share_its_hop_histogram() -> None:
    registry = CollectorRegistry()
    router, deliverer = hop_histogram(registry), hop_histogram(registry)
    router.labels(Hop.EVENT_TO_ROUTER).observe(0.004)
    deliverer.labels(Hop.CONSUME_TO_REQUEST).observe(0.001)
    for hop in (Hop.EVENT_TO_ROUTER, Hop.CONSUME_TO_REQUEST):
        assert registry.get_sample_value("hookline_hop_seconds_count", {"hop": hop}) == 1
    assert hop_histogram(CollectorRegistry()) is not router
