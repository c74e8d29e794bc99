"""The deliverer's composition root: the one place its Kafka clients, HTTP sender, clock,
subscriptions table and backlog store location are built and handed to `DeliveryLoop`."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Final

from confluent_kafka import Consumer, Producer

from core.secretbox import SecretBox
from deliverer.backlog import restore
from deliverer.loop import DeliveryLoop
from deliverer.metrics import DelivererMetrics
from deliverer.ports import CommitReports, Ports
from deliverer.requests import SigningKeys
from deliverer.sender import Sender
from hookline.runtime.clock import SystemClock
from hookline.runtime.codecs import open_codec
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.kafka import consumer_config, producer_config
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable

OUTPUT_LINGER_MS: Final = 20
"""Attempts and backlog records are off the webhook's latency path: bigger batches, less
CPU for this process and the broker."""
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
"""Outputs carry the command's payload; the broker's own limit is the real bound."""
PREFETCH_KIB: Final = 16 * 1024
"""Per-partition prefetch of the consumers (librdkafka's default is 64 MiB): memory stays
bounded while a burst is read at full speed into the backlog."""


@contextmanager
def bootstrap(
    settings: Settings,
    metrics: DelivererMetrics,
    *,
    lag: ConsumerLag,
    client_id: str,
    ready: threading.Event,
) -> Iterator[DeliveryLoop]:
    """Open everything the deliverer talks to and the loop over it; closed on exit (the
    Kafka clients, the store and the sender by the loop's own `close`)."""
    settings.require("kafka_bootstrap", "secret_key")
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    with ExitStack() as stack:
        runtime = open_codec(settings, client_id=client_id)
        stack.callback(runtime.close)
        table = SubscriptionTable(settings, runtime.codec, client_id=f"{client_id}-subscriptions")
        stack.callback(table.close)
        sublog = SubscriptionLog(settings, runtime.codec, client_id=f"{client_id}-disable")
        stack.callback(sublog.close)
        commits = CommitReports()
        group = settings.group("deliverer")
        bounded = {"queued.max.messages.kbytes": PREFETCH_KIB, "on_commit": commits.report}
        ports = Ports(
            codec=runtime.codec,
            subscriptions=table,
            subscription_log=sublog,
            consumer=Consumer(
                consumer_config(settings, group_id=group, client_id=client_id, lag=lag) | bounded
            ),
            tier_consumer=Consumer(
                consumer_config(
                    settings,
                    group_id=f"{group}.retries",
                    client_id=f"{client_id}-retries",
                    lag=lag,
                )
                | bounded
            ),
            producer=Producer(
                producer_config(settings, client_id=client_id, linger_ms=OUTPUT_LINGER_MS)
                | {"message.max.bytes": MAX_MESSAGE_BYTES}
            ),
            commits=commits,
            sender=Sender(allowed=settings.allowed_target_networks),
            restore=functools.partial(restore, settings, client_id=client_id),
            clock=SystemClock(),
            store_path=settings.data_dir / "deliverer" / f"{client_id}.backlog.sqlite",
        )
        table.start()
        yield DeliveryLoop(settings, metrics, ports, keys=SigningKeys(box), ready=ready)
