"""Subscriptions by id, built from the compacted `hookline.subscriptions` topic.

Every service that needs subscriptions owns one: at start it reads the topic to the end
offsets taken then before it reports ready, and follows live updates after. A background
thread owns the consumer; readers see an immutable snapshot swapped atomically.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from core.records import Subscription
from hookline.runtime.kafka import is_transient, reader_config, retry_transient
from hookline.runtime.settings import Settings
from schemas.errors import SchemaError
from schemas.records_avro import RecordCodec

log = logging.getLogger(__name__)

ChangeListener = Callable[[str, Subscription | None], None]


class SubscriptionTable:
    def __init__(
        self,
        settings: Settings,
        codec: RecordCodec,
        *,
        client_id: str,
        on_change: ChangeListener | None = None,
    ) -> None:
        self._topic = settings.topic("subscriptions")
        self._config = reader_config(settings, client_id=client_id)
        self._codec = codec
        self._on_change = on_change
        self._rows: Mapping[str, Subscription] = MappingProxyType({})
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"{client_id}-table", daemon=True)
        self._failure: BaseException | None = None
        self._positions: Mapping[int, int] = {}
        self.undecodable = 0

    # -- reading ---------------------------------------------------------------------------

    def get(self, subscription_id: str) -> Subscription | None:
        return self._rows.get(subscription_id)

    def snapshot(self) -> Mapping[str, Subscription]:
        return self._rows

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def wait_for(self, subscription_id: str, *, version: int | None, timeout_s: float) -> bool:
        """Wait until the table holds `version` (or newer) of a subscription; None = deleted."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                row = self._rows.get(subscription_id)
                if version is None and row is None:
                    return True
                if version is not None and row is not None and row.version >= version:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._failure is not None:
                    return False
                self._changed.wait(remaining)

    def wait_caught_up(self, ends: Mapping[int, int], *, timeout_s: float) -> bool:
        """Wait until every partition is read up to `ends` (end offsets the caller took after
        the writes it must see): the router's barrier, so an event is routed to every
        subscription written before it was published."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while any(self._positions.get(p, 0) < end for p, end in ends.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._failure is not None:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- the consumer thread ---------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            self._follow(consumer)
        except BaseException as exc:
            self._failure = exc
            log.exception("the subscriptions table stopped")
            with self._changed:
                self._changed.notify_all()
        finally:
            consumer.close()

    def _follow(self, consumer: Consumer) -> None:
        partitions, ends = retry_transient(
            lambda: self._end_offsets(consumer), what=f"reading {self._topic}'s end offsets"
        )
        consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p, end in ends.items() if end > 0}
        if not pending:
            self._ready.set()
        while not self._stopping.is_set():
            # consume() waits out its whole timeout unless the batch fills; poll() returns at
            # the first record, so a write is read back in milliseconds, not 200 ms
            first = consumer.poll(0.2)
            messages = [] if first is None else [first, *consumer.consume(499, timeout=0)]
            if messages:
                self._apply(messages)
            self._note_positions(consumer, partitions)
            if pending:
                for p in list(pending):
                    position = consumer.position([TopicPartition(self._topic, p)])[0].offset
                    if position >= ends[p]:
                        pending.discard(p)
                if not pending:
                    self._ready.set()

    def _end_offsets(self, consumer: Consumer) -> tuple[list[int], dict[int, int]]:
        metadata = consumer.list_topics(self._topic, timeout=30)
        topic = metadata.topics.get(self._topic)
        if topic is not None and topic.error is not None and is_transient(topic.error):
            raise KafkaException(topic.error)
        if topic is None or topic.error is not None:
            raise RuntimeError(f"topic {self._topic} is missing; run 'hookline topics ensure'")
        partitions = sorted(topic.partitions)
        ends = {}
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=30)
            ends[p] = high
        return partitions, ends

    def _note_positions(self, consumer: Consumer, partitions: list[int]) -> None:
        positions = consumer.position([TopicPartition(self._topic, p) for p in partitions])
        read = {tp.partition: max(tp.offset, 0) for tp in positions}
        if read != self._positions:
            with self._changed:
                self._positions = read
                self._changed.notify_all()

    def _apply(self, messages: list[Message]) -> None:
        rows = dict(self._rows)
        changes: list[tuple[str, Subscription | None]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("subscriptions topic: %s", error.str())
                continue
            key = message.key()
            if key is None:
                continue
            subscription_id = key.decode()
            value = message.value()
            if value is None:
                rows.pop(subscription_id, None)
                changes.append((subscription_id, None))
                continue
            try:
                subscription = self._codec.decode_subscription(value)
            except SchemaError as exc:
                self.undecodable += 1
                log.error(  # noqa: TRY400  (the reason is in the message; no traceback needed)
                    "undecodable subscription at %s[%d]@%d: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )
                continue
            current = rows.get(subscription_id)
            if current is None or subscription.version >= current.version:
                rows[subscription_id] = subscription
                changes.append((subscription_id, subscription))
        with self._changed:
            self._rows = MappingProxyType(rows)
            self._changed.notify_all()
        if self._on_change is not None:
            for subscription_id, row in changes:
                self._on_change(subscription_id, row)
