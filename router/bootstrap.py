"""The router's composition root: the one place its codec, subscriptions table, Kafka
clients, admin client and clock are built and handed to `Router.route`."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Final

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from hookline.runtime.clock import SystemClock
from hookline.runtime.codecs import open_codec
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.kafka import (
    ClientConfig,
    admin_config,
    consumer_config,
    producer_config,
)
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_table import SubscriptionTable
from router.ports import Ports

END_OFFSETS_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class KafkaClients:
    """New confluent-kafka clients from one configuration each (`router.ports.Clients`)."""

    consumer_config: ClientConfig
    producer_config: ClientConfig

    def consumer(self) -> Consumer:
        return Consumer(self.consumer_config)

    def producer(self) -> Producer:
        return Producer(self.producer_config)


def kafka_clients(
    settings: Settings, *, client_id: str, transactional_id: str, lag: ConsumerLag
) -> KafkaClients:
    """The router's consumer is a dynamic member of its group, though its name is stable: as
    a static member (`group.instance.id`) it was fenced by its own rejoin whenever its group
    coordinator moved with a lost broker, a fatal error that cost a rebuild of both clients
    (13-15 s). A restarted router gets its partitions once its predecessor's session
    expired, or at once when the predecessor left the group on a clean stop. Zombie fencing
    does not rest on membership: the transactional id does it."""
    return KafkaClients(
        consumer_config(settings, group_id=settings.group("router"), client_id=client_id, lag=lag),
        # no linger: the commit flushes the transaction's records anyway
        producer_config(
            settings,
            client_id=f"{client_id}-tx",
            transactional_id=transactional_id,
            linger_ms=0,
        ),
    )


def end_offsets(admin: AdminClient, partitions: list[TopicPartition]) -> dict[int, int]:
    """Asked of the admin client: a query on the router's consumer would queue behind its
    long-poll fetch."""
    request = dict.fromkeys(partitions, OffsetSpec.latest())
    futures = admin.list_offsets(request, request_timeout=END_OFFSETS_TIMEOUT_S)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


@contextmanager
def bootstrap(
    settings: Settings,
    *,
    client_id: str,
    transactional_id: str,
    lag: ConsumerLag,
) -> Iterator[Ports]:
    """Open everything the router talks to; the codec and the table are closed on exit (the
    Kafka clients by the routing loop that asked for them)."""
    with ExitStack() as stack:
        runtime = open_codec(settings, client_id=client_id)
        stack.callback(runtime.close)
        table = SubscriptionTable(settings, runtime.codec, client_id=f"{client_id}-subscriptions")
        stack.callback(table.close)
        clients = kafka_clients(
            settings, client_id=client_id, transactional_id=transactional_id, lag=lag
        )
        admin = AdminClient(admin_config(settings))
        table.start()
        yield Ports(
            codec=runtime.codec,
            subscriptions=table,
            clients=clients,
            end_offsets=functools.partial(end_offsets, admin),
            clock=SystemClock(),
        )
