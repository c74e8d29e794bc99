"""The replayer's composition root: the one place its codec, Kafka clients, subscriptions
table, database connections and clock are built and handed to `Replayer.replay`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Final

import psycopg
from confluent_kafka import Consumer, Producer

from api.model.db import connect
from api.model.history import StoredCommand, attempts_made, recoverable
from api.replayer.ports import Ports
from hookline.runtime.clock import SystemClock
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import consumer_config, producer_config, reader_config
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_table import SubscriptionTable

CLIENT_ID: Final = "hookline-replayer"
OUTPUT_LINGER_MS: Final = 20
FLUSH_ON_CLOSE_S: Final = 10.0


class PostgresHistory:
    """The history a recover or replay job reads, over one connection
    (`api.replayer.ports.History`)."""

    def __init__(self, conn: psycopg.Connection[object]) -> None:
        self._conn = conn

    @property
    def broken(self) -> bool:
        return self._conn.broken or self._conn.closed

    def recoverable(
        self, subscription_id: str, *, since: datetime, until: datetime, statuses: Sequence[str]
    ) -> list[StoredCommand]:
        return recoverable(self._conn, subscription_id, since=since, until=until, statuses=statuses)

    def attempts_made(self, subscription_id: str, *, since: datetime) -> dict[str, int]:
        return attempts_made(self._conn, subscription_id, since=since)

    def close(self) -> None:
        self._conn.close()


@contextmanager
def bootstrap(settings: Settings) -> Iterator[Ports]:
    """Open the Kafka side of the replayer and start its subscriptions table; closed on exit
    (the database connection by the job runner, which reconnects when one is lost)."""
    with ExitStack() as stack:
        runtime = open_codec(settings, client_id=CLIENT_ID)
        stack.callback(runtime.close)
        table = SubscriptionTable(settings, runtime.codec, client_id=f"{CLIENT_ID}-subs")
        stack.callback(table.close)
        producer = Producer(
            producer_config(settings, client_id=CLIENT_ID, linger_ms=OUTPUT_LINGER_MS)
        )
        stack.callback(producer.flush, FLUSH_ON_CLOSE_S)
        control = Consumer(
            consumer_config(settings, group_id=settings.group("replayer"), client_id=CLIENT_ID)
            | {"enable.partition.eof": True}
        )
        stack.callback(control.close)
        events_config = reader_config(settings, client_id=f"{CLIENT_ID}-events") | {
            "enable.partition.eof": True
        }
        table.start()
        yield Ports(
            codec=runtime.codec,
            control=control,
            open_events=lambda: Consumer(events_config),
            producer=producer,
            subscriptions=table,
            open_history=lambda: PostgresHistory(connect(settings)),
            clock=SystemClock(),
        )
