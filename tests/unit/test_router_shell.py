"""The router's shell (`Router.route` over its routing loop) driven through in-memory fakes
of its ports: a failed transaction is aborted and its batch read again from the committed
position; a fenced producer stops the router with its error."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from core.records import DeliveryCommand
from hookline.runtime.settings import Settings
from router.errors import RouterFenced
from router.ports import Ports
from router.service import Router
from tests.factories import subscription
from tests.fakes import FakeMessage, FakeSubscriptionTable, FakeTransactionalKafka, ManualClock
from tests.unit.test_records_avro import SAMPLE_DATA, event, make_codec

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


class Shell:
    """One router over fakes: two partitions of `events`, one subscription to task.created."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.events = self.settings.topic("events")
        self.deliveries = self.settings.topic("deliveries")
        self.codec = make_codec()
        self.kafka = FakeTransactionalKafka(
            {
                self.events: 2,
                self.deliveries: 1,
                self.settings.topic("dead-letters"): 1,
                self.settings.topic("subscriptions"): 1,
            }
        )
        self.subscriptions = FakeSubscriptionTable()
        self.subscriptions.put(subscription("sub-1", "task.created"))
        self.stopping = threading.Event()
        self.registry = CollectorRegistry()
        self.router = Router(self.settings, self.registry, client_id="router-test")

    def publish(self, partition: int) -> str:
        """One task.created event on `partition` of `events`; its id."""
        event_id = str(uuid.uuid4())
        value = self.codec.encode_event(
            event("task.created", SAMPLE_DATA["task.created"], id=event_id)
        )
        self.kafka.add(self.events, partition, key=b"t1", value=value)
        return event_id

    def route_until_idle(self) -> None:
        """Route until a poll finds nothing left to read."""

        def stop_when_idle(message: FakeMessage | None) -> None:
            if message is None:
                self.stopping.set()

        self.kafka.on_poll = stop_when_idle
        self.route()

    def route(self) -> None:
        ports = Ports(
            codec=self.codec,
            subscriptions=self.subscriptions,
            clients=self.kafka,
            end_offsets=lambda partitions: {},
            clock=ManualClock(T0),
        )
        self.router.route(ports, self.stopping)

    def hop_count(self, name: str) -> float:
        value = self.registry.get_sample_value("hookline_hop_seconds_count", {"hop": name})
        return value or 0.0

    def commands(self) -> list[DeliveryCommand]:
        return [
            self.codec.decode_delivery_command(record.value or b"")
            for record in self.kafka.to(self.deliveries)
        ]


def test_the_committed_batch_holds_every_command_and_its_offsets() -> None:
    shell = Shell()
    sent = [shell.publish(0), shell.publish(1), shell.publish(0)]

    shell.route_until_idle()

    assert sorted(c.event_id for c in shell.commands()) == sorted(sent)
    assert {c.subscription_id for c in shell.commands()} == {"sub-1"}
    assert shell.kafka.committed == {(shell.events, 0): 2, (shell.events, 1): 1}
    assert shell.kafka.aborted == 0


@pytest.mark.parametrize("failing", ["produce", "commit"])
def test_a_failed_transaction_is_aborted_and_its_batch_read_again_from_the_committed_position(
    failing: str,
) -> None:
    shell = Shell()
    shell.publish(0)
    shell.publish(0)
    shell.kafka.committed[(shell.events, 0)] = 1  # the first event was routed before
    again = [shell.publish(0), shell.publish(1)]
    refused = KafkaError(KafkaError._STATE, "broker refused", txn_requires_abort=True)
    if failing == "produce":
        shell.kafka.fail_next_produce = refused
    else:
        shell.kafka.fail_next_commit = refused

    shell.route_until_idle()

    assert shell.kafka.aborted == 1
    [consumer] = shell.kafka.consumers
    assert sorted(consumer.seeks) == [(shell.events, 0, 1), (shell.events, 1, 0)]
    routed = [c.event_id for c in shell.commands()]
    assert len(routed) == 3, "each event routed exactly once"
    assert set(again) < set(routed)
    assert shell.kafka.committed == {(shell.events, 0): 3, (shell.events, 1): 1}
    # every read is measured, a commit only once it happened
    assert shell.hop_count("event_to_router") == 6
    assert shell.hop_count("route_to_commit") == 3


def test_a_fenced_router_stops_with_its_error_and_commits_nothing() -> None:
    shell = Shell()
    shell.publish(0)

    def newer_instance_starts(_message: FakeMessage | None) -> None:
        shell.kafka.fence()

    shell.kafka.on_poll = newer_instance_starts

    with pytest.raises(RouterFenced) as raised:
        shell.route()

    assert raised.value.transactional_id == shell.router.transactional_id
    assert "fenced" in raised.value.reason
    assert shell.kafka.records == []
    assert shell.kafka.committed == {}
    assert len(shell.kafka.producers) == 1, "a fenced producer is never replaced"
    assert [consumer.closed for consumer in shell.kafka.consumers] == [True]
    assert not shell.router.ready
