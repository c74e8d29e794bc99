"""The projector's composition root: the one place its codec, Kafka clients and database
connections are built and handed to `Projector.project`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Final

from confluent_kafka import Consumer, Producer

from api.model.db import connect, schema_name
from api.projector.ports import Ports
from api.projector.projection import PostgresHistory
from hookline.runtime.codecs import open_codec
from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.kafka import consumer_config, producer_config
from hookline.runtime.settings import Settings

CLIENT_ID: Final = "hookline-projector"
FLUSH_ON_CLOSE_S: Final = 10.0


@contextmanager
def bootstrap(settings: Settings, *, lag: ConsumerLag) -> Iterator[Ports]:
    """Open the Kafka side of the projector; closed on exit (the database connections by
    the projector, which reconnects when one is lost)."""
    with ExitStack() as stack:
        runtime = open_codec(settings, client_id=CLIENT_ID)
        stack.callback(runtime.close)
        producer = Producer(producer_config(settings, client_id=CLIENT_ID))
        stack.callback(producer.flush, FLUSH_ON_CLOSE_S)
        consumer = Consumer(
            consumer_config(
                settings,
                group_id=settings.group("projector"),
                client_id=CLIENT_ID,
                lag=lag,
                batched=True,
            )
            | {"enable.partition.eof": True}
        )
        stack.callback(consumer.close)
        schema = schema_name(settings)
        yield Ports(
            codec=runtime.codec,
            consumer=consumer,
            producer=producer,
            open_history=lambda: PostgresHistory(connect(settings), schema),
        )
